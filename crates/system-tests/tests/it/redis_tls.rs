//! Redis over TLS: a `rediss://` `REDIS_URL` for the API, worker, webhook sender and queue,
//! against a `redis-server` that speaks TLS only, with a certificate from a CA the test makes.

use serde_json::json;

use llmflow_core::queue::{self, RedisTarget};
use llmflow_testkit::daemons::TlsRedis;

use crate::pipeline::bench_pipeline_completes;
use crate::support::TestApp;

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_rediss_with_the_test_ca() {
    let redis = TlsRedis::start().await;
    let app = TestApp::spawn_with(json!({
        "redis_url": redis.url("localhost"),
        "redis_ca_cert": redis.ca_file,
    }))
    .await;
    bench_pipeline_completes(&app).await;

    // The queue really is on the TLS server: its keys are there, under the test's namespace.
    let target = RedisTarget {
        url: redis.url("127.0.0.1"),
        ca_cert: Some(redis.ca_file.clone()),
    };
    let mut conn = queue::connect_to(&target).await.expect("TLS connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.namespace))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(!keys.is_empty(), "no queue keys on the TLS Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_refuses_a_server_whose_ca_is_not_trusted() {
    let redis = TlsRedis::start().await;
    // Without REDIS_CA_CERT only the webpki roots are trusted.
    let err = queue::connect_to(&RedisTarget::url(redis.url("localhost")))
        .await
        .expect_err("untrusted certificate refused");
    let text = chain(&err);
    assert!(text.contains("certificate not trusted"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");

    // A host the certificate is not issued for.
    let ca = RedisTarget {
        url: format!("rediss://127.0.0.2:{}/0", redis.port),
        ca_cert: Some(redis.ca_file.clone()),
    };
    let err = queue::connect_to(&ca)
        .await
        .expect_err("wrong host refused");
    assert!(
        chain(&err).contains("host name mismatch"),
        "{}",
        chain(&err)
    );

    // A CA file that cannot be read is named.
    let target = RedisTarget {
        url: redis.url("localhost"),
        ca_cert: Some("/nonexistent/redis-ca.pem".into()),
    };
    let err = queue::connect_to(&target).await.expect_err("missing file");
    assert!(
        chain(&err).contains("/nonexistent/redis-ca.pem"),
        "{}",
        chain(&err)
    );

    // Plain redis:// against the TLS port does not get through.
    let plain = format!("redis://127.0.0.1:{}/0", redis.port);
    assert!(queue::connect(&plain).await.is_err());
}
