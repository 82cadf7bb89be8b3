//! `llmflow listen` verifies deliveries with the official `standardwebhooks` crate: the
//! timestamp within its tolerance, and any `v1` signature in the header.

use std::time::{SystemTime, UNIX_EPOCH};

use standardwebhooks::Webhook;

use crate::support::{cli, run, Listener};

/// The Standard Webhooks known-answer secret.
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const BODY: &str = r#"{"type":"workflow.completed","job_id":"j"}"#;

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// POSTs `body` with the given Standard Webhooks headers; returns the status code.
async fn deliver(listener: &Listener, timestamp: i64, signature: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(&listener.url)
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn verifies_with_the_official_crate() {
    let listener = Listener::start(&["--secret", SECRET], &[]).await;
    let key = Webhook::new(SECRET).unwrap();
    let other = Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let ts = now();
    let good = key.sign("msg_1", ts, BODY.as_bytes()).unwrap();
    let wrong = other.sign("msg_1", ts, BODY.as_bytes()).unwrap();

    assert_eq!(deliver(&listener, ts, &good, BODY).await, 200);
    // Key rotation: any one of the signatures in the header verifies.
    assert_eq!(
        deliver(&listener, ts, &format!("{wrong} {good}"), BODY).await,
        200
    );
    assert_eq!(deliver(&listener, ts, &wrong, BODY).await, 401);
    // A tampered body.
    assert_eq!(deliver(&listener, ts, &good, r#"{"type":"x"}"#).await, 401);
    // Correctly signed, but outside the five-minute tolerance (either way).
    for stale in [ts - 600, ts + 600] {
        let signed = key.sign("msg_1", stale, BODY.as_bytes()).unwrap();
        assert_eq!(deliver(&listener, stale, &signed, BODY).await, 401);
    }
    // No signature headers at all.
    let res = reqwest::Client::new()
        .post(&listener.url)
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn raw_secret_from_config() {
    // Without --secret, LLM_WEBHOOK_SECRET is read through the configuration. A secret without
    // the `whsec_` prefix is the key's raw bytes, even where it would also read as base64.
    let secret = "cGxhaW4tc2VjcmV0";
    let listener = Listener::start(&[], &[("LLM_WEBHOOK_SECRET", secret)]).await;
    let raw = Webhook::from_bytes(secret.as_bytes().to_vec()).unwrap();
    let decoded = Webhook::new(secret).unwrap();
    let ts = now();
    let good = raw.sign("msg_1", ts, BODY.as_bytes()).unwrap();
    let wrong = decoded.sign("msg_1", ts, BODY.as_bytes()).unwrap();
    assert_eq!(deliver(&listener, ts, &good, BODY).await, 200);
    assert_eq!(deliver(&listener, ts, &wrong, BODY).await, 401);
}

#[tokio::test]
async fn refuses_to_start_without_a_usable_secret() {
    for (args, vars, expect) in [
        (vec![], vec![], "LLM_WEBHOOK_SECRET"),
        (vec!["--secret", "whsec_"], vec![], "empty"),
        (vec!["--secret", "whsec_!!"], vec![], "base64"),
        (
            vec![],
            vec![("LLM_WEBHOOK_SECRET", "  ")],
            "LLM_WEBHOOK_SECRET",
        ),
    ] {
        let mut all = vec!["listen", "--address", "127.0.0.1:0"];
        all.extend(args);
        let ran = run(&all, &vars).await;
        assert!(!ran.success, "{all:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(expect), "{all:?}: {}", ran.stderr);
        // Bad input: exit code 2.
        cli(&all, &vars).assert().code(2);
    }
}
