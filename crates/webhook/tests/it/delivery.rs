//! Delivery: a delivery row and its pushed id are all the sender needs. It signs each attempt
//! afresh, delivers to the receiver, records every attempt, retries a failure at the times of
//! the schedule and dead-letters after the last attempt; 410 Gone and a refused address stop
//! at once; an attempt pushed twice is sent once.

use std::ops::Deref;
use std::time::Duration;

use serde_json::{json, Value};

use llmflow_core::db::deliveries::state;
use llmflow_core::queue::{self, DeliveryMessage, Queues};
use llmflow_core::{DeliveryId, JobId};
use llmflow_testkit::queries::{attempts_of, wait_for_delivery};
use llmflow_testkit::{jobs, verifies, Reply, Scripted, TestEnv, WEBHOOK_SECRET};

/// The sender alone, on the test's rooms.
struct SenderTest {
    env: TestEnv,
    _sender: llmflow_webhook::WebhookHandle,
}

impl Deref for SenderTest {
    type Target = TestEnv;

    fn deref(&self) -> &Self::Target {
        &self.env
    }
}

impl SenderTest {
    async fn spawn(overrides: Value) -> SenderTest {
        let env = TestEnv::start(overrides).await;
        let state = llmflow_webhook::WebhookState::connect(env.config.clone())
            .await
            .expect("webhook state");
        SenderTest {
            _sender: llmflow_webhook::start(state),
            env,
        }
    }

    /// A finished job (deliveries belong to a job), as the worker leaves it.
    async fn job(&self) -> JobId {
        jobs::insert(self, "bench_pipeline", json!({"text": "x"}), |job| {
            job.status = "completed".to_owned();
        })
        .await
    }

    /// Records a `workflow.completed` delivery of `job` to `url` and pushes its first attempt.
    async fn deliver(&self, job: JobId, url: &str) -> DeliveryId {
        let payload = json!({"job_id": job, "status": "completed", "result": {"n": 1}});
        let id = jobs::enqueue_delivery(self, job, url, "workflow.completed", payload).await;
        jobs::push_delivery(self, id, 1).await;
        id
    }

    /// A receiver answering from `script`, a new job, and its delivery to the receiver, pushed.
    async fn deliver_to(&self, script: Vec<Reply>) -> (Scripted, JobId, DeliveryId) {
        let receiver = Scripted::spawn(script).await;
        let job = self.job().await;
        let id = self.deliver(job, &receiver.url).await;
        (receiver, job, id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_delivery_is_signed_delivered_and_recorded() {
    let app = SenderTest::spawn(json!({})).await;
    let (receiver, job, id) = app.deliver_to(Vec::new()).await;
    let row = wait_for_delivery(&app.pool, id.0, state::DELIVERED).await;
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_status_code, Some(200));
    assert!(row.delivered_at.is_some() && row.next_attempt_at.is_none());

    let hits = receiver.wait_hits(1, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.header("webhook-id"), row.webhook_id);
    assert!(verifies(hit, &hit.body, WEBHOOK_SECRET));
    assert_eq!(hit.header("content-type"), "application/json");
    let body = hit.json();
    assert_eq!(body, row.payload, "the stored payload is the body");
    assert_eq!(body["type"], "workflow.completed");
    assert_eq!(body["job_id"], job.to_string());

    let mut conn = app.conn().await;
    let attempts = attempts_of(&mut conn, id.0).await.expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let attempt = &attempts[0];
    assert_eq!(attempt.attempt_number, 1);
    assert_eq!(attempt.trigger, "scheduled");
    assert_eq!(attempt.status_code, Some(200));
    assert!(attempt.success);
    assert_eq!(attempt.error_class, None);
    assert_eq!(attempt.response_body.as_deref(), Some("ok"));
    assert_eq!(attempt.webhook_url, receiver.url);
    let host = receiver.url.trim_start_matches("http://");
    assert_eq!(attempt.remote_addr.as_deref(), host.strip_suffix("/hooks"));
    assert!(attempt.next_retry_at.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_at_the_scheduled_times_then_dead_lettered() {
    // Three attempts: at once, then 1 s and 2 s after each failure.
    let app = SenderTest::spawn(json!({"webhook_retry_schedule": "1,2"})).await;
    let failures = [500, 503, 500].map(Reply::Status).to_vec();
    let (receiver, _, id) = app.deliver_to(failures).await;
    let row = wait_for_delivery(&app.pool, id.0, state::DEAD).await;
    assert_eq!(row.attempts, 3);
    assert_eq!(row.last_status_code, Some(500));
    assert!(row.dead_lettered_at.is_some() && row.next_attempt_at.is_none());

    let mut conn = app.conn().await;
    let attempts = attempts_of(&mut conn, id.0).await.expect("attempts");
    let failed: Vec<_> = attempts
        .iter()
        .map(|a| (a.status_code, a.success, a.error_class.as_deref()))
        .collect();
    let http = |code| (Some(code), false, Some("http"));
    assert_eq!(failed, [http(500), http(503), http(500)]);
    // Each failure names the time of the next attempt (its delay after the failure), and the
    // next attempt is never made before it. The last one names none: dead letters.
    for (k, delay) in [(0, 1.0), (1, 2.0)] {
        let (failed, next) = (&attempts[k], &attempts[k + 1]);
        let due = failed.next_retry_at.expect("next retry time");
        let after = (due - failed.attempted_at).num_milliseconds() as f64 / 1000.0;
        assert!(
            after >= delay && after <= delay + 3.0,
            "attempt {} failed and named a retry {after:.3} s after it, scheduled {delay} s",
            k + 1
        );
        assert!(
            next.attempted_at >= due,
            "attempt {} made at {} before its time {due}",
            k + 2,
            next.attempted_at
        );
    }
    assert!(attempts[2].next_retry_at.is_none());

    // Three requests, one webhook-id, each signed afresh.
    let hits = receiver.wait_hits(3, Duration::from_secs(5)).await;
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|h| h.header("webhook-id") == row.webhook_id));
    assert!(hits.iter().all(|h| verifies(h, &h.body, WEBHOOK_SECRET)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_and_refused_addresses_are_dead_after_one_attempt() {
    let app = SenderTest::spawn(json!({})).await;
    let (receiver, job, gone) = app.deliver_to(vec![Reply::Status(410)]).await;
    // Only 127.0.0.0/8 is allowed: a private address is refused before any connection.
    let refused = app.deliver(job, "http://10.0.0.1/hooks").await;
    let mut conn = app.conn().await;
    for (id, class, code) in [(gone, "http", Some(410)), (refused, "blocked", None)] {
        let row = wait_for_delivery(&app.pool, id.0, state::DEAD).await;
        assert_eq!(row.attempts, 1, "{class}");
        assert!(row.dead_lettered_at.is_some(), "{class}");
        let attempts = attempts_of(&mut conn, id.0).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "{class}");
        assert_eq!(attempts[0].error_class.as_deref(), Some(class));
        assert_eq!(attempts[0].status_code, code, "{class}");
        assert!(attempts[0].next_retry_at.is_none(), "{class}");
    }
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_pushed_twice_is_sent_once() {
    // One delivery at a time, in the order pushed: when the delivery behind the duplicate is
    // delivered, the duplicate has been taken and handled.
    let app = SenderTest::spawn(json!({"webhook_concurrency": 1})).await;
    let (receiver, _, twice) = app.deliver_to(Vec::new()).await;
    let mut storage = Queues::new(app.namespace.clone()).delivery_storage(
        queue::connect(&llmflow_testkit::redis::redis_url())
            .await
            .expect("redis"),
        1,
    );
    let again = DeliveryMessage {
        delivery_id: twice,
        attempt: 1,
    };
    queue::push_delivery_as(&mut storage, again, &format!("{twice}:again"))
        .await
        .expect("push again");
    let behind = app.deliver(app.job().await, &receiver.url).await;
    wait_for_delivery(&app.pool, behind.0, state::DELIVERED).await;

    let row = wait_for_delivery(&app.pool, twice.0, state::DELIVERED).await;
    assert_eq!(row.attempts, 1);
    let mut conn = app.conn().await;
    let attempts = attempts_of(&mut conn, twice.0).await.expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let sent: Vec<_> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.header("webhook-id") == row.webhook_id)
        .collect();
    assert_eq!(sent.len(), 1, "the duplicate was not sent");
}
