//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    llm_workflow_definitions (hash) {
        hash -> Varchar,
        name -> Varchar,
        version -> Varchar,
        definition -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    llm_workflow_jobs (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        workflow_name -> Varchar,
        workflow_version -> Varchar,
        workflow_hash -> Varchar,
        status -> Varchar,
        priority -> Int2,
        input_data -> Jsonb,
        result -> Nullable<Jsonb>,
        error_message -> Nullable<Text>,
        webhook_url -> Nullable<Text>,
        webhook_secret -> Nullable<Text>,
        queue_task_id -> Nullable<Varchar>,
        current_step -> Nullable<Varchar>,
        steps_completed -> Int4,
        steps_planned -> Int4,
        cancel_requested -> Bool,
        idempotency_key -> Nullable<Varchar>,
        attempts -> Int4,
        claimed_by -> Nullable<Varchar>,
        claimed_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
        total_input_tokens -> Int8,
        total_output_tokens -> Int8,
        total_cost_usd -> Numeric,
        is_stale -> Bool,
        stale_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        queued_at -> Nullable<Timestamptz>,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        webhook_events -> Nullable<Jsonb>,
        max_cost_usd -> Nullable<Numeric>,
        idempotency_hash -> Nullable<Varchar>,
        idempotency_expires_at -> Nullable<Timestamptz>,
        estimated_wait_seconds -> Nullable<Int4>,
        retry_count -> Int4,
        retry_history -> Jsonb,
        traceparent -> Nullable<Text>,
    }
}

diesel::table! {
    llm_job_steps (id) {
        id -> Uuid,
        job_id -> Uuid,
        step_id -> Varchar,
        step_type -> Varchar,
        position -> Int4,
        status -> Varchar,
        input -> Nullable<Jsonb>,
        output -> Nullable<Jsonb>,
        error_kind -> Nullable<Varchar>,
        error_message -> Nullable<Text>,
        attempts -> Int4,
        input_tokens -> Int8,
        output_tokens -> Int8,
        cost_usd -> Numeric,
        started_at -> Timestamptz,
        completed_at -> Timestamptz,
        duration_ms -> Int4,
    }
}

diesel::table! {
    llm_provider_usage (id) {
        id -> Uuid,
        job_id -> Nullable<Uuid>,
        step_id -> Nullable<Varchar>,
        user_id -> Nullable<Uuid>,
        provider -> Varchar,
        model -> Varchar,
        input_tokens -> Int4,
        output_tokens -> Int4,
        total_tokens -> Int4,
        cached_input_tokens -> Int4,
        cost_usd -> Numeric,
        table_cost_usd -> Numeric,
        provider_cost_usd -> Nullable<Numeric>,
        usage_estimated -> Bool,
        provider_request_id -> Nullable<Varchar>,
        duration_ms -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    llm_webhook_deliveries (id) {
        id -> Uuid,
        job_id -> Uuid,
        url -> Text,
        webhook_id -> Varchar,
        event_type -> Varchar,
        payload -> Jsonb,
        status -> Varchar,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        last_status_code -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        dead_lettered_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        claim_token -> Nullable<Uuid>,
        next_trigger -> Varchar,
        job_run -> Int4,
        claimed_by -> Nullable<Varchar>,
    }
}

diesel::table! {
    llm_webhook_attempts (id) {
        id -> Uuid,
        delivery_id -> Uuid,
        job_id -> Uuid,
        webhook_url -> Text,
        attempt_number -> Int4,
        trigger -> Varchar,
        status_code -> Nullable<Int4>,
        success -> Bool,
        error_class -> Nullable<Varchar>,
        error_message -> Nullable<Text>,
        response_body -> Nullable<Text>,
        remote_addr -> Nullable<Varchar>,
        duration_ms -> Int4,
        next_retry_at -> Nullable<Timestamptz>,
        attempted_at -> Timestamptz,
    }
}

diesel::table! {
    llm_external_api_cache (request_hash) {
        request_hash -> Varchar,
        service -> Varchar,
        response -> Jsonb,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    llm_workers (name) {
        name -> Varchar,
        kind -> Varchar,
        host -> Varchar,
        pid -> Int4,
        version -> Varchar,
        started_at -> Timestamptz,
        concurrency -> Int4,
        in_flight -> Int4,
        last_heartbeat -> Timestamptz,
    }
}

diesel::joinable!(llm_job_steps -> llm_workflow_jobs (job_id));
diesel::joinable!(llm_webhook_deliveries -> llm_workflow_jobs (job_id));
diesel::joinable!(llm_webhook_attempts -> llm_webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    llm_workflow_definitions,
    llm_workflow_jobs,
    llm_job_steps,
    llm_provider_usage,
    llm_webhook_deliveries,
    llm_webhook_attempts,
    llm_external_api_cache,
    llm_workers,
);

diesel::table! {
    llm_admin_audit (id) {
        id -> Uuid,
        actor -> Varchar,
        action -> Varchar,
        detail -> Jsonb,
        affected -> Int4,
        created_at -> Timestamptz,
    }
}
