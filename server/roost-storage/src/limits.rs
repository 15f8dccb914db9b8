//! Limits every node shares through the catalog, so that N nodes do not give an attacker N times the
//! budget: sliding-window rate limits (events per key within a window) and single-use keys. On
//! PostgreSQL a check and its count are one transaction holding an advisory lock per key; on SQLite
//! (one server per data folder) one immediate transaction.

use crate::{db::Db, Result, Storage, StorageError};

/// The longest window any rate limit uses; events older than this are pruned.
pub const LONGEST_WINDOW_MS: i64 = 15 * 60 * 1000;

/// PostgreSQL's text holds no NUL: callers separate a key's parts with `\0`, stored as U+001F.
fn stored(key: &str) -> String {
    key.replace('\0', "\u{1f}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Storage {
    /// Checks each `(key, limit)` over the last `window_ms`: `Some(seconds to wait)` when one of them
    /// already holds `limit` events. Otherwise, when `count`, records one event for every key.
    pub async fn rate_limit(&self, keys: &[(String, usize)], window_ms: i64, count: bool) -> Result<Option<u64>> {
        let now = now_ms();
        let since = now - window_ms;
        let keys: Vec<(String, usize)> = keys.iter().map(|(k, l)| (stored(k), *l)).collect();
        let wait_of = |limit_th: Option<i64>| limit_th.map(|at| ((at + window_ms - now).max(0) as u64).div_ceil(1000).max(1));
        let mut wait: Option<u64> = None;
        // The same statements on both dialects, in one transaction ($tx); `$select`/`$insert` in
        // the dialect's SQL.
        macro_rules! check_and_count {
            ($tx:ident, $select:expr, $insert:expr) => {{
                for (k, limit) in &keys {
                    let at: Option<(i64,)> = sqlx::query_as($select).bind(k).bind(since).bind(*limit as i64 - 1).fetch_optional(&mut *$tx).await?;
                    if let Some(w) = wait_of(at.map(|(a,)| a)) {
                        wait = Some(wait.map_or(w, |x| x.max(w)));
                    }
                }
                if wait.is_none() && count {
                    for (k, _) in &keys {
                        sqlx::query($insert).bind(k).bind(now).execute(&mut *$tx).await?;
                    }
                }
                $tx.commit().await?;
            }};
        }
        match &self.catalog {
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let mut sorted: Vec<&String> = keys.iter().map(|(k, _)| k).collect();
                sorted.sort();
                for k in sorted {
                    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 16))").bind(k).execute(&mut *tx).await?;
                }
                check_and_count!(
                    tx,
                    "select at from roost.rate_events where key = $1 and at > $2 order by at desc limit 1 offset $3",
                    "insert into roost.rate_events (key, at) values ($1, $2)"
                );
            }
            Db::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                check_and_count!(
                    tx,
                    "select at from rate_events where key = ? and at > ? order by at desc limit 1 offset ?",
                    "insert into rate_events (key, at) values (?, ?)"
                );
            }
            Db::SqliteEngine(_) => return Err(StorageError::Internal("the catalog is never a tenant engine".into())),
        }
        Ok(wait)
    }

    /// Records one event for each key (a failure counted after the fact).
    pub async fn rate_count(&self, keys: &[String]) -> Result<()> {
        let now = now_ms().to_string();
        let sql = match self.dialect() {
            roost_odata::sql::Dialect::Sqlite => "insert into rate_events (key, at) values (?, cast(? as integer))",
            roost_odata::sql::Dialect::Postgres => "insert into roost.rate_events (key, at) values ($1, $2::bigint)",
        };
        for k in keys {
            self.catalog_exec(sql, &[&stored(k), &now]).await?;
        }
        Ok(())
    }

    /// Forgets a key's events (a successful sign-in clears its e-mail's failures).
    pub async fn rate_forget(&self, key: &str) -> Result<()> {
        let sql = match self.dialect() {
            roost_odata::sql::Dialect::Sqlite => "delete from rate_events where key = ?",
            roost_odata::sql::Dialect::Postgres => "delete from roost.rate_events where key = $1",
        };
        self.catalog_exec(sql, &[&stored(key)]).await.map(drop)
    }

    /// `true` the first time `key` is used before it expires (unix seconds), on any node.
    pub async fn first_use(&self, key: &str, expires: i64) -> Result<bool> {
        let now = chrono::Utc::now().timestamp().to_string();
        let sql = match self.dialect() {
            roost_odata::sql::Dialect::Sqlite => {
                "insert into used_keys (key, expires) values (?, cast(? as integer)) \
                 on conflict (key) do update set expires = excluded.expires where used_keys.expires <= cast(? as integer)"
            }
            roost_odata::sql::Dialect::Postgres => {
                "insert into roost.used_keys (key, expires) values ($1, $2::bigint) \
                 on conflict (key) do update set expires = excluded.expires where roost.used_keys.expires <= $3::bigint"
            }
        };
        Ok(self.catalog_exec(sql, &[&stored(key), &expires.to_string(), &now]).await? == 1)
    }

    /// Removes rate events older than the longest window and single-use keys that expired.
    pub async fn prune_limits(&self) -> Result<()> {
        let before = (now_ms() - LONGEST_WINDOW_MS).to_string();
        let now = chrono::Utc::now().timestamp().to_string();
        let (events, keys) = match self.dialect() {
            roost_odata::sql::Dialect::Sqlite => {
                ("delete from rate_events where at < cast(? as integer)", "delete from used_keys where expires < cast(? as integer)")
            }
            roost_odata::sql::Dialect::Postgres => {
                ("delete from roost.rate_events where at < $1::bigint", "delete from roost.used_keys where expires < $1::bigint")
            }
        };
        self.catalog_exec(events, &[&before]).await?;
        self.catalog_exec(keys, &[&now]).await?;
        Ok(())
    }
}

impl Storage {
    /// Stores `value` under `key` in the platform's shared facts unless one is there; returns the
    /// stored value (the first node's).
    pub async fn platform_fact(&self, key: &str, value: &str) -> Result<String> {
        let (insert, select) = match self.dialect() {
            roost_odata::sql::Dialect::Sqlite => {
                ("insert into platform (key, value) values (?, ?) on conflict (key) do nothing", "select value from platform where key = ?")
            }
            roost_odata::sql::Dialect::Postgres => {
                ("insert into roost.platform (key, value) values ($1, $2) on conflict (key) do nothing", "select value from roost.platform where key = $1")
            }
        };
        self.catalog_exec(insert, &[key, value]).await?;
        Ok(self.catalog_strings(select, &[key]).await?.into_iter().next().unwrap_or_default())
    }
}
