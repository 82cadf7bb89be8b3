//! Criterion benchmark of Standard Webhooks signing (HMAC-SHA256 over `id.timestamp.body`).
//! Run with `cargo bench -p llmflow-webhook`.

use criterion::{criterion_group, criterion_main, Criterion};

use llmflow_webhook::signing::{sign, SigningKey, WebhookHeaders};

fn signing(c: &mut Criterion) {
    let key = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("key");
    let previous = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
    // A completed bench_pipeline webhook is about 1.5 KB.
    let body = format!(
        r#"{{"type":"workflow.completed","job_id":"0193a7e2-0000-7000-8000-000000000000","result":{{"summary":"{}"}}}}"#,
        "x".repeat(1400)
    );
    let keys = [key.clone()];
    c.bench_function("webhook signing (1 key, 1.5 KB body)", |b| {
        b.iter(|| {
            sign(
                std::hint::black_box(&keys),
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                body.as_bytes(),
            )
        })
    });
    let rotating = [key, previous];
    c.bench_function(
        "webhook headers (2 keys during rotation, 1.5 KB body)",
        |b| {
            b.iter(|| {
                WebhookHeaders::new(
                    std::hint::black_box(&rotating),
                    "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                    1_649_367_553,
                    body.as_bytes(),
                )
            })
        },
    );
}

criterion_group!(benches, signing);
criterion_main!(benches);
