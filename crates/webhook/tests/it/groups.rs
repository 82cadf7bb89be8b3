//! The sender's group commits against the real PostgreSQL: many claims by one statement, many
//! attempt records by one statement, and what each request gets back when some of the group
//! cannot be written (asked twice, not due, claim taken over, a row PostgreSQL refuses).

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use llmflow_core::db::attempt_claims::{claim_attempts, ClaimRequest};
use llmflow_core::db::attempt_records::{record_attempts, AttemptRecord};
use llmflow_core::db::deliveries::{self, state, AttemptOutcome, Claim};
use llmflow_core::db::models::AttemptRow;
use llmflow_core::DeliveryId;
use llmflow_testkit::queries::attempts_of;
use llmflow_testkit::{jobs, TestEnv};

const SENDER: &str = "webhook-group-test";
const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

async fn delivery(env: &TestEnv) -> DeliveryId {
    let job = jobs::insert(env, "bench_pipeline", json!({"text": "x"}), |job| {
        job.status = "completed".to_owned();
    })
    .await;
    let payload = json!({"job_id": job, "status": "completed"});
    jobs::enqueue_delivery(
        env,
        job,
        "http://127.0.0.1:9/hooks",
        "workflow.completed",
        payload,
    )
    .await
}

fn request(id: DeliveryId, attempt: i32) -> ClaimRequest {
    ClaimRequest {
        delivery_id: id.0,
        attempt,
    }
}

fn record(claim: &Claim, status_code: i32, outcome: AttemptOutcome) -> AttemptRecord {
    let next_retry_at = match outcome {
        AttemptOutcome::RetryAt(at) => Some(at),
        _ => None,
    };
    AttemptRecord {
        row: AttemptRow {
            id: Uuid::now_v7(),
            delivery_id: claim.delivery.id,
            job_id: claim.delivery.job_id,
            webhook_url: claim.delivery.url.clone(),
            attempt_number: claim.delivery.attempts,
            trigger: claim.trigger.clone(),
            status_code: Some(status_code),
            success: outcome == AttemptOutcome::Delivered,
            error_class: None,
            error_message: None,
            response_body: Some("ok".to_owned()),
            remote_addr: None,
            duration_ms: 2,
            next_retry_at,
            attempted_at: Utc::now(),
        },
        outcome,
        token: claim.token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_claims_claims_each_due_attempt_once() {
    let env = TestEnv::start(json!({})).await;
    let (a, b, c) = (
        delivery(&env).await,
        delivery(&env).await,
        delivery(&env).await,
    );
    let mut conn = env.conn().await;

    // `a` asked twice in one group, `b` for an attempt that is not due, `c` due.
    let requests = [request(a, 1), request(b, 2), request(a, 1), request(c, 1)];
    let answers = claim_attempts(&mut conn, &requests, CLAIM_TIMEOUT, SENDER).await;
    let claims: Vec<Option<Claim>> = answers.into_iter().map(|a| a.expect("claim")).collect();
    let claimed_a: Vec<&Claim> = [&claims[0], &claims[2]].into_iter().flatten().collect();
    assert_eq!(claimed_a.len(), 1, "one of a's two requests claims it");
    assert!(claims[1].is_none(), "attempt 2 of b is not due");
    let claim_c = claims[3].as_ref().expect("c is claimed");
    for claim in [claimed_a[0], claim_c] {
        assert_eq!(claim.delivery.status, state::DELIVERING);
        assert_eq!(claim.delivery.attempts, 1);
        assert_eq!(claim.trigger, deliveries::trigger::SCHEDULED);
    }
    assert_eq!(claimed_a[0].delivery.id, a.0);
    assert_eq!(claim_c.delivery.id, c.0);

    // Claimed now: asking again claims nothing, the same as a single claim would answer.
    let again = claim_attempts(&mut conn, &[request(c, 1)], CLAIM_TIMEOUT, SENDER).await;
    assert!(again[0].as_ref().expect("claim").is_none());
    let alone = deliveries::claim_attempt(&mut conn, b.0, 1, CLAIM_TIMEOUT, SENDER)
        .await
        .expect("claim");
    assert!(alone.is_some(), "b's first attempt is still due");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_records_writes_each_one_and_a_refused_row_fails_alone() {
    let env = TestEnv::start(json!({})).await;
    let ids = [
        delivery(&env).await,
        delivery(&env).await,
        delivery(&env).await,
        delivery(&env).await,
    ];
    let mut conn = env.conn().await;
    let requests: Vec<ClaimRequest> = ids.iter().map(|&id| request(id, 1)).collect();
    let claims: Vec<Claim> = claim_attempts(&mut conn, &requests, CLAIM_TIMEOUT, SENDER)
        .await
        .into_iter()
        .map(|a| a.expect("claim").expect("due"))
        .collect();

    let retry_at = Utc::now() + chrono::Duration::seconds(5);
    let delivered = record(&claims[0], 200, AttemptOutcome::Delivered);
    let retried = record(&claims[1], 500, AttemptOutcome::RetryAt(retry_at));
    // A claim taken over: the token no longer holds the delivery.
    let mut taken_over = record(&claims[2], 200, AttemptOutcome::Delivered);
    taken_over.token = Uuid::now_v7();
    // A row PostgreSQL refuses (the attempt's trigger is checked).
    let mut refused = record(&claims[3], 200, AttemptOutcome::Delivered);
    refused.row.trigger = "never".to_owned();

    let group = [delivered, retried, taken_over, refused];
    let answers = record_attempts(&mut conn, &group).await;
    assert_eq!(answers[0].as_ref().ok(), Some(&true), "{answers:?}");
    assert_eq!(answers[1].as_ref().ok(), Some(&true), "{answers:?}");
    assert_eq!(answers[2].as_ref().ok(), Some(&false), "{answers:?}");
    assert!(answers[3].is_err(), "{answers:?}");

    let read = |id: DeliveryId| {
        let pool = env.pool.clone();
        async move {
            let mut conn = pool.get().await.expect("conn");
            deliveries::find(&mut conn, id.0)
                .await
                .expect("find")
                .expect("row")
        }
    };
    let row = read(ids[0]).await;
    assert_eq!(row.status, state::DELIVERED);
    assert!(row.delivered_at.is_some() && row.next_attempt_at.is_none());
    assert_eq!(row.last_status_code, Some(200));
    let row = read(ids[1]).await;
    assert_eq!(row.status, state::FAILED);
    assert_eq!(
        row.next_attempt_at.map(|t| t.timestamp_micros()),
        Some(retry_at.timestamp_micros())
    );
    assert_eq!(row.last_status_code, Some(500));
    assert!(row.delivered_at.is_none() && row.dead_lettered_at.is_none());
    for id in [ids[2], ids[3]] {
        let row = read(id).await;
        assert_eq!(row.status, state::DELIVERING, "nothing recorded for {id:?}");
    }
    let counts = [
        attempts_of(&mut conn, ids[0].0).await.expect("a").len(),
        attempts_of(&mut conn, ids[1].0).await.expect("b").len(),
        attempts_of(&mut conn, ids[2].0).await.expect("c").len(),
        attempts_of(&mut conn, ids[3].0).await.expect("d").len(),
    ];
    assert_eq!(counts, [1, 1, 0, 0]);

    // The refused one, made right, records; a dead one is dead-lettered.
    let dead = record(&claims[3], 410, AttemptOutcome::Dead);
    let answers = record_attempts(&mut conn, &[dead]).await;
    assert_eq!(answers[0].as_ref().ok(), Some(&true), "{answers:?}");
    let row = read(ids[3]).await;
    assert_eq!(row.status, state::DEAD);
    assert!(row.dead_lettered_at.is_some() && row.next_attempt_at.is_none());
}
