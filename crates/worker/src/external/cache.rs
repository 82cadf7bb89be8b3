//! Response cache of `external_api` calls: a bounded map in memory in front of the
//! `llm_external_api_cache` table (shared by every worker, and kept across restarts). Entries
//! expire at the time their step's `cache_ttl_secs` gave them; only successful responses are
//! stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use llmflow_core::db::schema::llm_external_api_cache as table;
use llmflow_core::db::DbError;

/// Most responses kept in memory per process; the oldest entry makes room.
pub const MEMORY_ENTRIES: usize = 1024;

/// The in-memory layer: insertion-ordered, bounded, with per-entry expiry.
#[derive(Default)]
pub struct MemoryCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, (Instant, Value)>,
    order: VecDeque<String>,
}

impl MemoryCache {
    /// A fresh entry for `key`, if any (an expired one is dropped).
    pub fn get(&self, key: &str) -> Option<Value> {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.map.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: &str, value: Value, ttl: Duration) {
        let Some(expires) = Instant::now().checked_add(ttl) else {
            return;
        };
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries
            .map
            .insert(key.to_owned(), (expires, value))
            .is_none()
        {
            entries.order.push_back(key.to_owned());
        }
        while entries.map.len() > MEMORY_ENTRIES {
            match entries.order.pop_front() {
                Some(oldest) => {
                    entries.map.remove(&oldest);
                }
                None => break,
            }
        }
        // Keys of entries dropped on expiry linger in `order`; keep it from growing unbounded.
        if entries.order.len() > 2 * MEMORY_ENTRIES {
            let Entries { map, order } = &mut *entries;
            order.retain(|k| map.contains_key(k));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

/// An unexpired stored response and when it expires.
pub async fn lookup(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<Option<(Value, DateTime<Utc>)>, DbError> {
    Ok(table::table
        .find(key)
        .filter(table::expires_at.gt(diesel::dsl::now))
        .select((table::response, table::expires_at))
        .first(conn)
        .await
        .optional()?)
}

/// Stores (or replaces) a response for `ttl`.
pub async fn store(
    conn: &mut AsyncPgConnection,
    key: &str,
    service: &str,
    response: &Value,
    ttl: Duration,
) -> Result<(), DbError> {
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero());
    diesel::insert_into(table::table)
        .values((
            table::request_hash.eq(key),
            table::service.eq(service),
            table::response.eq(response),
            table::created_at.eq(now),
            table::expires_at.eq(expires),
        ))
        .on_conflict(table::request_hash)
        .do_update()
        .set((
            table::response.eq(response),
            table::created_at.eq(now),
            table::expires_at.eq(expires),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_cache_expires_and_stays_bounded() {
        let cache = MemoryCache::default();
        cache.insert("a", json!(1), Duration::from_secs(60));
        assert_eq!(cache.get("a"), Some(json!(1)));
        cache.insert("gone", json!(2), Duration::ZERO);
        assert_eq!(cache.get("gone"), None);
        for i in 0..MEMORY_ENTRIES + 10 {
            cache.insert(&format!("k{i}"), json!(i), Duration::from_secs(60));
        }
        assert_eq!(cache.len(), MEMORY_ENTRIES);
        assert_eq!(cache.get("a"), None, "the oldest entry made room");
        assert!(cache.get(&format!("k{}", MEMORY_ENTRIES + 9)).is_some());
    }
}
