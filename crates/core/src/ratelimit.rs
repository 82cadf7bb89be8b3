//! Rate limits shared through Redis by GCRA, the generic cell rate algorithm. A [`Rate`] of
//! `limit` units per `period` lets a burst of `limit` through at once, then one unit every
//! `period / limit`. A key holds one number, the theoretical arrival time (TAT) of the next
//! unit in microseconds of the Redis server's clock, so every process (and every replica) that
//! uses the same key shares one budget without agreeing on the time. Unlike a fixed window,
//! GCRA never lets two bursts through on either side of a window's edge: over any span `s` it
//! admits at most `limit + s / (period / limit)` units.
//!
//! Every llmflow limiter is built on it: per-user submits in the API, calls per external
//! service in the worker (both through [`take`]), and the LLM providers' requests and tokens
//! per minute, whose admission script checks several scopes at once with [`GCRA_LUA`].

use std::sync::LazyLock;
use std::time::Duration;

/// `limit` units per `period`, with a burst of `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Units per period, and the largest burst (at least 1 once configured).
    pub limit: u64,
    pub period: Duration,
}

impl Rate {
    pub fn new(limit: u64, period: Duration) -> Rate {
        Rate { limit, period }
    }

    /// `limit` units per minute.
    pub fn per_minute(limit: u64) -> Rate {
        Rate::new(limit, Duration::from_secs(60))
    }

    /// The period in microseconds, the unit of the scripts.
    fn period_us(self) -> u64 {
        u64::try_from(self.period.as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// The GCRA functions, in Lua, for scripts that combine limits with other steps; a script
/// built with [`script`] starts with them. Times are microseconds of the server's clock.
///
/// - `gcra_now()`: the server's clock.
/// - `gcra_check(key, now, limit, period, cost)`: whether `cost` units fit `key`'s budget of
///   `limit` per `period` now. Returns the wait (0 when they fit) and the TAT after taking
///   them. A cost above the whole burst fits an empty budget only (else it never would).
/// - `gcra_commit(key, now, tat)`: takes the units (records a TAT `gcra_check` returned). The
///   key expires when its budget is full again.
pub const GCRA_LUA: &str = r"
local function gcra_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function gcra_check(key, now, limit, period, cost)
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  local new_tat = tat + period * cost / limit
  local allow_at = math.min(new_tat - period, tat)
  if now < allow_at then return allow_at - now, new_tat end
  return 0, new_tat
end
local function gcra_commit(key, now, tat)
  redis.call('SET', key, tat, 'PX', math.ceil((tat - now) / 1000) + 1)
end
";

/// A script made of [`GCRA_LUA`] followed by `body`.
pub fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{GCRA_LUA}\n{body}"))
}

/// KEYS[1] the budget; ARGV limit, period (µs), cost. Returns 0 when taken, else the wait in µs.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r"
local now = gcra_now()
local wait, tat = gcra_check(KEYS[1], now, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if wait > 0 then return math.ceil(wait) end
gcra_commit(KEYS[1], now, tat)
return 0
",
    )
});

/// Takes `cost` units from `key`'s budget if they fit now: `None` when taken, else how long
/// until they would fit (nothing is taken then).
pub async fn take<C>(
    conn: &mut C,
    key: &str,
    rate: Rate,
    cost: u64,
) -> Result<Option<Duration>, redis::RedisError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let wait_us: u64 = TAKE
        .key(key)
        .arg(rate.limit.max(1))
        .arg(rate.period_us())
        .arg(cost)
        .invoke_async(conn)
        .await?;
    Ok((wait_us > 0).then(|| Duration::from_micros(wait_us)))
}
