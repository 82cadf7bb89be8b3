//! Provider limits shared by every worker through Redis: per provider (and per model where
//! configured) a concurrency limit — a semaphore of leases that expire if their worker dies —
//! and requests/tokens per minute (GCRA budgets of `crate::ratelimit`: a call costs one request
//! and its expected tokens). All scopes of a call are admitted at once or not at all, in one
//! script. The limiter also learns from the providers' rate-limit headers: when a provider says
//! no requests remain, new calls to it wait until its window resets. Waiting for a limit is not
//! an error; it is bounded by the step's timeout (the caller drops the future) and by
//! `LLM_LIMIT_MAX_WAIT_SECS`.
//! A call to a provider with no configured limit asks Redis about holds at most every
//! [`HOLD_RECHECK`] per process, so such calls usually start without a round trip; a hold this
//! process learns applies to its own next call at once.
//!
//! Configuration (`LLM_LIMITS`, JSON):
//! `{"openrouter": {"max_concurrency": 8, "rpm": 600, "tpm": 200000,
//!   "models": {"openai/gpt-4o": {"max_concurrency": 2}}}}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::Deserialize;

use super::{ProviderError, RateLimitHint};
use crate::ratelimit;

/// Limits of one provider or one model; a missing figure is no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRule {
    /// Calls in flight at once, across all workers.
    pub max_concurrency: Option<u32>,
    /// Calls started per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute: the prompt's estimate plus `max_tokens` is reserved when a call
    /// starts, corrected by the reported usage when it ends.
    pub tpm: Option<u64>,
}

/// A provider's limits, with optional per-model limits on top.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderLimits {
    #[serde(flatten)]
    pub rule: LimitRule,
    #[serde(default)]
    pub models: BTreeMap<String, LimitRule>,
}

/// Every configured limit, by provider name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct LimitsConfig(pub BTreeMap<String, ProviderLimits>);

#[derive(Debug, thiserror::Error)]
pub enum LimitsConfigError {
    #[error("not valid JSON limits: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    #[error("`{0}`: a limit must be at least 1")]
    Zero(String),
}

impl LimitsConfig {
    /// Parses `LLM_LIMITS`; empty means no limits.
    pub fn parse(text: &str) -> Result<LimitsConfig, LimitsConfigError> {
        if text.trim().is_empty() {
            return Ok(LimitsConfig::default());
        }
        let config: LimitsConfig = serde_json::from_str(text)?;
        for (provider, limits) in &config.0 {
            if !super::PROVIDER_NAMES.contains(&provider.as_str()) {
                return Err(LimitsConfigError::UnknownProvider(provider.clone()));
            }
            let rules = std::iter::once((provider.clone(), &limits.rule)).chain(
                limits
                    .models
                    .iter()
                    .map(|(m, r)| (format!("{provider}.models.{m}"), r)),
            );
            for (name, rule) in rules {
                let zero =
                    rule.max_concurrency == Some(0) || rule.rpm == Some(0) || rule.tpm == Some(0);
                if zero {
                    return Err(LimitsConfigError::Zero(name));
                }
            }
        }
        Ok(config)
    }

    /// The rules that apply to a call, with the scope each is counted under.
    fn scopes(&self, provider: &str, model: &str) -> Vec<(String, LimitRule)> {
        let Some(limits) = self.0.get(provider) else {
            return Vec::new();
        };
        let mut scopes = vec![(provider.to_owned(), limits.rule.clone())];
        if let Some(rule) = limits.models.get(model) {
            scopes.push((format!("{provider}:{model}"), rule.clone()));
        }
        scopes
    }
}

/// Settings of the limiter beyond the rules.
#[derive(Clone, Copy, Debug)]
pub struct LimiterSettings {
    /// A lease not renewed for this long is taken as its worker's death and freed.
    pub lease_ttl: Duration,
    /// Longest a call waits for its limits before failing with `Timeout`.
    pub max_wait: Duration,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            lease_ttl: Duration::from_secs(30),
            max_wait: Duration::from_secs(600),
        }
    }
}

/// How long a call with no configured limit trusts the last look at its provider's hold: such
/// a call needs Redis only to learn about holds (which last seconds), so within this window it
/// starts without a round trip.
pub const HOLD_RECHECK: Duration = Duration::from_millis(100);

/// Admits calls under the shared limits. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    redis: ConnectionManager,
    namespace: String,
    rules: Arc<LimitsConfig>,
    settings: LimiterSettings,
    /// Per provider: no hold was seen in Redis, and none is expected before this instant.
    unheld_until: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("namespace", &self.namespace)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Admission: returns 0 when admitted (leases taken, budgets charged), -1 when a concurrency
/// limit is full, else the milliseconds until a hold ends or the request and token budgets
/// have room. KEYS[1] = hold key; then per scope: semaphore, request budget, token budget.
/// ARGV = lease id, lease ttl ms, scope count, then per scope: concurrency, rpm, tpm, tokens
/// (0 = no limit). A call that needs more tokens than a whole minute's budget is admitted
/// when that budget is untouched (else it never would be).
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    ratelimit::script(
        r"
local now = gcra_now()
local now_ms = math.floor(now / 1000)
local minute = 60000000
local hold = redis.call('PTTL', KEYS[1])
if hold > 0 then return hold end
local n = tonumber(ARGV[3])
-- Scope i: its semaphore, request and token budgets, and its limits.
local function scope(i)
  local k, a = 1 + (i - 1) * 3, 4 + (i - 1) * 4
  return KEYS[k + 1], KEYS[k + 2], KEYS[k + 3],
    tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
end
local charges = {}
for i = 1, n do
  local sem, requests, tokens_key, conc, rpm, tpm, tokens = scope(i)
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', sem, '-inf', now_ms)
    if redis.call('ZCARD', sem) >= conc then return -1 end
  end
  for _, budget in ipairs({{requests, rpm, 1}, {tokens_key, tpm, tokens}}) do
    if budget[2] > 0 then
      local wait, tat = gcra_check(budget[1], now, budget[2], minute, budget[3])
      if wait > 0 then return math.ceil(wait / 1000) end
      charges[#charges + 1] = {budget[1], tat}
    end
  end
end
for i = 1, n do
  local sem, _, _, conc = scope(i)
  if conc > 0 then redis.call('ZADD', sem, now_ms + tonumber(ARGV[2]), ARGV[1]) end
end
for _, charge in ipairs(charges) do gcra_commit(charge[1], now, charge[2]) end
return 0
",
    )
});

/// Pushes a lease's expiry forward (only if it is still held). KEYS = semaphores; ARGV =
/// lease id, ttl ms.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + tonumber(ARGV[2]), ARGV[1])
end
return 0
",
    )
});

/// Charges tokens to token budgets whether or not they fit (they were used already).
/// KEYS = token budgets; ARGV = tokens, then each budget's tpm.
static ADD_TOKENS: LazyLock<redis::Script> = LazyLock::new(|| {
    ratelimit::script(
        r"
local now = gcra_now()
for i = 1, #KEYS do
  local _, tat = gcra_check(KEYS[i], now, tonumber(ARGV[i + 1]), 60000000, tonumber(ARGV[1]))
  gcra_commit(KEYS[i], now, tat)
end
return 0
",
    )
});

/// Sets a hold unless a longer one is already set. KEYS[1] = hold key; ARGV[1] = ms.
static HOLD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
",
    )
});

/// A call's admission: its leases are renewed while it lives and released when it is dropped.
pub struct Permit {
    limiter: Limiter,
    semaphores: Vec<String>,
    /// Token budgets with their tokens per minute.
    token_budgets: Vec<(String, u64)>,
    reserved_tokens: u64,
    lease: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Permit {
    /// Corrects the token budgets by what the call really used (only ever upwards: a
    /// reservation that proved too large is simply paid back as the budget refills).
    pub async fn record_tokens(&self, used: u64) {
        let extra = used.saturating_sub(self.reserved_tokens);
        if extra == 0 || self.token_budgets.is_empty() {
            return;
        }
        let mut conn = self.limiter.redis.clone();
        let mut invocation = ADD_TOKENS.prepare_invoke();
        invocation.arg(extra);
        for (key, tpm) in &self.token_budgets {
            invocation.key(key).arg(tpm);
        }
        if let Err(e) = invocation.invoke_async::<i64>(&mut conn).await {
            tracing::warn!(error = %e, "could not record token usage in the shared limiter");
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if self.semaphores.is_empty() {
            return;
        }
        let mut conn = self.limiter.redis.clone();
        let semaphores = std::mem::take(&mut self.semaphores);
        let lease = self.lease.clone();
        // Without a runtime (process ending) the lease simply expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut pipe = redis::pipe();
                for key in &semaphores {
                    pipe.zrem(key, &lease).ignore();
                }
                if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                    tracing::warn!(error = %e, "could not release a limiter lease; it will expire");
                }
            });
        }
    }
}

impl Limiter {
    /// A limiter over `redis`, with keys under `{namespace}:llm:`.
    pub fn new(
        redis: ConnectionManager,
        namespace: &str,
        rules: LimitsConfig,
        settings: LimiterSettings,
    ) -> Limiter {
        Limiter {
            redis,
            namespace: namespace.to_owned(),
            rules: Arc::new(rules),
            settings,
            unheld_until: Arc::default(),
        }
    }

    fn unheld(&self, provider: &str) -> bool {
        self.unheld_until
            .lock()
            .ok()
            .and_then(|m| m.get(provider).copied())
            .is_some_and(|until| Instant::now() < until)
    }

    fn mark_unheld(&self, provider: &str, unheld: bool) {
        if let Ok(mut m) = self.unheld_until.lock() {
            if unheld {
                m.insert(provider.to_owned(), Instant::now() + HOLD_RECHECK);
            } else {
                m.remove(provider);
            }
        }
    }

    fn key(&self, kind: &str, scope: &str) -> String {
        format!("{}:llm:{kind}:{scope}", self.namespace)
    }

    /// Waits until the call may start: no hold on the provider, a free lease under every
    /// concurrency limit that applies, and room in every request and token budget. `tokens` is
    /// what the call is expected to use. Redis being unreachable admits the call (with a
    /// warning): the providers' own 429s, which are retried, then stand in for the shared limits.
    pub async fn acquire(
        &self,
        provider: &str,
        model: &str,
        tokens: u64,
    ) -> Result<Permit, ProviderError> {
        let scopes = self.rules.scopes(provider, model);
        let lease = uuid::Uuid::new_v4().simple().to_string();
        // No limit applies: only a hold could stop the call, and none was seen just now.
        if scopes.is_empty() && self.unheld(provider) {
            return Ok(self.permit(Vec::new(), Vec::new(), 0, lease));
        }
        let ttl_ms = u64::try_from(self.settings.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = ADMIT.prepare_invoke();
        invocation.key(self.key("hold", provider));
        let mut semaphores = Vec::new();
        let mut token_budgets = Vec::new();
        for (scope, rule) in &scopes {
            let sem = self.key("sem", scope);
            let tok = self.key("tpm", scope);
            invocation.key(&sem).key(self.key("rpm", scope)).key(&tok);
            if rule.max_concurrency.is_some() {
                semaphores.push(sem);
            }
            if let Some(tpm) = rule.tpm {
                token_budgets.push((tok, tpm));
            }
        }
        invocation.arg(&lease).arg(ttl_ms).arg(scopes.len());
        for (_, rule) in &scopes {
            invocation
                .arg(rule.max_concurrency.unwrap_or(0))
                .arg(rule.rpm.unwrap_or(0))
                .arg(rule.tpm.unwrap_or(0))
                .arg(tokens);
        }
        let started = Instant::now();
        let mut poll = Duration::from_millis(10);
        let mut conn = self.redis.clone();
        loop {
            let verdict = match invocation.invoke_async::<i64>(&mut conn).await {
                Ok(verdict) => verdict,
                Err(e) => {
                    tracing::warn!(error = %e, provider, "shared limiter unreachable; calling without it");
                    return Ok(self.permit(Vec::new(), Vec::new(), 0, lease));
                }
            };
            let wait = match verdict {
                0 => {
                    if scopes.is_empty() {
                        self.mark_unheld(provider, true);
                    }
                    return Ok(self.permit(semaphores, token_budgets, tokens, lease));
                }
                -1 => {
                    let wait = poll;
                    poll = (poll * 2).min(Duration::from_millis(250));
                    wait
                }
                ms => Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(1)),
            };
            let left = self.settings.max_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ProviderError::timeout(format!(
                    "waited {} s for {provider} limits",
                    self.settings.max_wait.as_secs()
                )));
            }
            tracing::debug!(
                provider,
                model,
                wait_ms = wait.as_millis() as u64,
                "waiting for a provider limit"
            );
            tokio::time::sleep(wait.min(left)).await;
        }
    }

    fn permit(
        &self,
        semaphores: Vec<String>,
        token_budgets: Vec<(String, u64)>,
        reserved_tokens: u64,
        lease: String,
    ) -> Permit {
        let renewal = (!semaphores.is_empty()).then(|| {
            let mut conn = self.redis.clone();
            let keys = semaphores.clone();
            let lease = lease.clone();
            let ttl = self.settings.lease_ttl;
            tokio::spawn(async move {
                let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let mut invocation = RENEW.prepare_invoke();
                    for key in &keys {
                        invocation.key(key);
                    }
                    if let Err(e) = invocation
                        .arg(&lease)
                        .arg(ttl_ms)
                        .invoke_async::<i64>(&mut conn)
                        .await
                    {
                        tracing::warn!(error = %e, "could not renew a limiter lease");
                    }
                }
            })
        });
        Permit {
            limiter: self.clone(),
            semaphores,
            token_budgets,
            reserved_tokens,
            lease,
            renewal,
        }
    }

    /// Learns from a provider's rate-limit headers: no requests left means new calls wait
    /// until the window resets.
    pub async fn learn(&self, provider: &str, hint: RateLimitHint) {
        if hint.remaining_requests == Some(0) {
            if let Some(reset) = hint.reset_requests {
                self.hold(provider, reset).await;
            }
        }
    }

    /// Holds new calls to `provider` for `wait` (a 429's `Retry-After`, or a reset seen in
    /// headers), in every worker.
    pub async fn hold(&self, provider: &str, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return;
        }
        self.mark_unheld(provider, false);
        let mut conn = self.redis.clone();
        if let Err(e) = HOLD
            .key(self.key("hold", provider))
            .arg(ms)
            .invoke_async::<i64>(&mut conn)
            .await
        {
            tracing::warn!(error = %e, provider, "could not record a provider hold");
        }
    }
}
