//! Jobs and webhook deliveries written to PostgreSQL and pushed to Redis as the API and the
//! worker write and push them, for tests of one consumer alone (no API, or no worker, running).

use serde_json::Value;

use llmflow_core::config::Config;
use llmflow_core::db::jobs;
use llmflow_core::db::models::NewJob;
use llmflow_core::pricing::PriceTable;
use llmflow_core::queue::{self, Band, DeliveryMessage, Queues};
use llmflow_core::workflow::{Catalog, Checks};
use llmflow_core::{DeliveryId, JobId, JobStatus};

use crate::TestEnv;

/// Records a job of the workflow `name` (from the configured workflows folder) as the API does:
/// its definition stored, the row `queued` with its id as task id, after `edit` has adjusted
/// the row (priority, webhook URL, budget …). Nothing is pushed: see [`push`].
pub async fn insert(
    env: &TestEnv,
    name: &str,
    input: Value,
    edit: impl FnOnce(&mut NewJob),
) -> JobId {
    let config = &env.config;
    let pricing = PriceTable::load(config.pricing_file.as_deref()).expect("pricing table");
    let env_names = config.workflow_env_names();
    let checks = Checks::new(&pricing).with_env(env_names);
    let catalog = Catalog::load_checked(&config.workflows_dir, &config.prompts_dir, checks)
        .expect("workflows");
    let loaded = catalog
        .get(name)
        .unwrap_or_else(|| panic!("workflow {name} in the workflows folder"));
    let (workflow, hash) = (&loaded.workflow, &loaded.hash);
    let job_id = JobId::new();
    let mut job = NewJob {
        id: job_id.0,
        user_id: None,
        workflow_name: workflow.name.clone(),
        workflow_version: workflow.version.clone(),
        workflow_hash: hash.clone(),
        status: JobStatus::Queued.as_str().to_owned(),
        queue_task_id: Some(job_id.to_string()),
        queued_at: Some(chrono::Utc::now()),
        priority: 5,
        input_data: input,
        webhook_url: None,
        webhook_secret: None,
        steps_planned: i32::try_from(workflow.planned_steps()).expect("step count"),
        idempotency_key: None,
        webhook_events: None,
        max_cost_usd: None,
        idempotency_hash: None,
        idempotency_expires_at: None,
        estimated_wait_seconds: Some(0),
        traceparent: None,
    };
    edit(&mut job);
    let mut conn = env.conn().await;
    let (version, definition) = (&workflow.version, &loaded.definition);
    jobs::store_definition(&mut conn, hash, name, version, definition)
        .await
        .expect("store the definition");
    jobs::insert_job(&mut conn, &job)
        .await
        .expect("insert the job");
    job_id
}

fn queues(config: &Config) -> Queues {
    Queues::new(config.redis_namespace.clone())
}

async fn redis(config: &Config) -> ::redis::aio::ConnectionManager {
    queue::connect_to(&config.redis_target())
        .await
        .expect("redis")
}

/// Pushes a job's id to its priority band under `task_id` (the job id on a first push; another
/// task id makes a second message for the same job).
pub async fn push(env: &TestEnv, job_id: JobId, priority: i16, task_id: &str) {
    let config = &env.config;
    let mut storage = queues(config).band_storage(redis(config).await, Band::of(priority), 1);
    queue::push_job(&mut storage, job_id, task_id)
        .await
        .expect("push the job");
}

/// Records a webhook event for a job (as the worker does when a job ends) and returns its id.
/// Nothing is pushed: see [`push_delivery`].
pub async fn enqueue_delivery(
    env: &TestEnv,
    job_id: JobId,
    url: &str,
    event_type: &str,
    payload: Value,
) -> DeliveryId {
    let mut conn = env.conn().await;
    llmflow_core::db::deliveries::enqueue_event(&mut conn, job_id.0, url, event_type, payload)
        .await
        .expect("enqueue the delivery")
}

/// Pushes attempt `attempt` of a delivery, due now.
pub async fn push_delivery(env: &TestEnv, delivery_id: DeliveryId, attempt: i32) {
    let config = &env.config;
    let mut storage = queues(config).delivery_storage(redis(config).await, 1);
    let message = DeliveryMessage {
        delivery_id,
        attempt,
    };
    queue::push_delivery(&mut storage, message, std::time::Duration::ZERO)
        .await
        .expect("push the delivery");
}
