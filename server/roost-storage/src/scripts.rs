//! Tenant scripts in the catalog (table scripts, custom APIs, jobs, shared modules, extensions), the
//! tenants' script logs, and job runs. Scripts are loaded with the tenant and cached with it; every
//! change bumps the catalog generation like any other control-plane change.

use crate::{now_iso, Result, Storage, StorageError};
use roost_odata::sql::Dialect;
use std::sync::Arc;

/// What a script is, as stored (`kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScriptKind {
    /// `table/<table>.<op>.js`; name `<table>.<op>`.
    Table,
    /// `api/<name>.js`; meta holds the permissions (`api/<name>.json`).
    Api,
    /// `scheduler/<job>.js`; meta holds the schedule.
    Job,
    /// `shared/<name>.js`.
    Shared,
    /// `extensions/<name>.js` (`startup`).
    Extension,
}

impl ScriptKind {
    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptKind::Table => "table",
            ScriptKind::Api => "api",
            ScriptKind::Job => "job",
            ScriptKind::Shared => "shared",
            ScriptKind::Extension => "extension",
        }
    }

    /// Parses a stored kind name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "table" => ScriptKind::Table,
            "api" => ScriptKind::Api,
            "job" => ScriptKind::Job,
            "shared" => ScriptKind::Shared,
            "extension" => ScriptKind::Extension,
            _ => return None,
        })
    }

    /// The folder of the Mobile Services layout holding scripts of this kind.
    pub fn folder(self) -> &'static str {
        match self {
            ScriptKind::Table => "table",
            ScriptKind::Api => "api",
            ScriptKind::Job => "scheduler",
            ScriptKind::Shared => "shared",
            ScriptKind::Extension => "extensions",
        }
    }
}

/// A `tenant_scripts` row.
#[derive(sqlx::FromRow)]
struct ScriptRow {
    kind: String,
    name: String,
    body: String,
    meta: String,
    updated_at: String,
}

/// A job script's row, with its tenant.
#[derive(sqlx::FromRow)]
struct JobRow {
    tenant: String,
    #[sqlx(flatten)]
    script: ScriptRow,
}

impl ScriptRow {
    fn into_record(self) -> Result<ScriptRecord> {
        Ok(ScriptRecord {
            kind: ScriptKind::parse(&self.kind).ok_or_else(|| StorageError::Internal(format!("unknown script kind {}", self.kind)))?,
            meta: serde_json::from_str(&self.meta).map_err(|e| StorageError::Internal(format!("meta of script {}: {e}", self.name)))?,
            body: Arc::from(self.body),
            name: self.name,
            updated_at: self.updated_at,
        })
    }
}

/// A stored script.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptRecord {
    /// Kind.
    pub kind: ScriptKind,
    /// Name as stored (case kept).
    pub name: String,
    /// The JavaScript text.
    pub body: Arc<str>,
    /// Kind-specific metadata (API permissions, job schedule), JSON.
    pub meta: serde_json::Value,
    /// Last change, ISO-8601.
    pub updated_at: String,
}

impl ScriptRecord {
    /// The script's path in the Mobile Services layout, as logs show it: `/table/todo.insert.js`.
    pub fn source(&self) -> String {
        format!("/{}/{}.js", self.kind.folder(), self.name)
    }
}

/// One script log line (§6.8).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LogLine {
    /// Sequence number (increasing).
    pub id: i64,
    /// ISO-8601 time.
    pub time: String,
    /// The level.
    #[sqlx(try_from = "String")]
    pub level: roost_api::LogLevel,
    /// The script path.
    pub source: String,
    /// The message.
    pub message: String,
}

/// Which log lines to read ([`Storage::logs_filtered`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Only lines with a greater id.
    pub after: i64,
    /// Only lines with a smaller id.
    pub before: Option<i64>,
    /// Only this level.
    pub level: Option<roost_api::LogLevel>,
    /// Only sources containing this text.
    pub source: Option<String>,
    /// Only messages containing this text (case-insensitive).
    pub text: Option<String>,
    /// Only lines at or after this time (ISO-8601).
    pub since: Option<String>,
    /// Only lines before this time (ISO-8601).
    pub until: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: i64,
}

/// `%text%` for LIKE, with the pattern characters of `text` escaped by `\`.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A recorded job run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    /// Job name.
    pub job: String,
    /// The schedule time this run was for (or the request time for a run now).
    pub due: String,
    /// Start time.
    pub started_at: String,
    /// How it ended; `None` while running.
    pub outcome: Option<roost_api::JobOutcome>,
    /// Duration in milliseconds, once finished.
    pub duration_ms: Option<i64>,
}

/// A `job_runs` row.
#[derive(sqlx::FromRow)]
struct JobRunRow {
    job: String,
    due: String,
    started_at: String,
    outcome: Option<String>,
    duration_ms: Option<i64>,
}

impl From<JobRunRow> for JobRun {
    fn from(r: JobRunRow) -> Self {
        JobRun { job: r.job, due: r.due, started_at: r.started_at, outcome: r.outcome.map(roost_api::JobOutcome::from), duration_ms: r.duration_ms }
    }
}

impl Storage {
    pub async fn script_records(&self, tenant: &str) -> Result<Vec<ScriptRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select kind, name, body, meta, updated_at from tenant_scripts where tenant = ? order by kind, name",
            Dialect::Postgres => "select kind, name, body, meta, to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as updated_at from roost.tenant_scripts where tenant = $1 order by kind, name_lower",
        };
        self.catalog_query::<ScriptRow>(sql, &[tenant]).await?.into_iter().map(ScriptRow::into_record).collect()
    }

    /// Every job script of every tenant, with its tenant: the scheduler reads these without loading
    /// tenants that have no jobs.
    pub async fn job_scripts(&self) -> Result<Vec<(String, ScriptRecord)>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select tenant, kind, name, body, meta, updated_at from tenant_scripts where kind = 'job' order by tenant, name",
            Dialect::Postgres => "select tenant, kind, name, body, meta, to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as updated_at from roost.tenant_scripts where kind = 'job' order by tenant, name_lower",
        };
        self.catalog_query::<JobRow>(sql, &[]).await?.into_iter().map(|r| Ok((r.tenant, r.script.into_record()?))).collect()
    }

    /// Creates or replaces a script (the caller has checked its syntax). Saving the same text and
    /// metadata again keeps its `updated_at` (its version: startup runs once per version).
    pub async fn put_script(&self, tenant: &str, kind: ScriptKind, name: &str, body: &str, meta: &serde_json::Value) -> Result<()> {
        let t = self.tenant(tenant).await?.ok_or(StorageError::NotFound)?;
        let meta = meta.to_string();
        match self.dialect() {
            Dialect::Sqlite => {
                // Keep the stored casing of an existing name (R3).
                self.catalog_exec(
                    "insert into tenant_scripts (tenant, kind, name, body, meta, updated_at) values (?, ?, ?, ?, ?, ?) \
                     on conflict (tenant, kind, name) do update set body = excluded.body, meta = excluded.meta, updated_at = excluded.updated_at \
                     where tenant_scripts.body <> excluded.body or tenant_scripts.meta <> excluded.meta",
                    &[&t.record.name, kind.as_str(), name, body, &meta, &now_iso()],
                )
                .await?;
            }
            Dialect::Postgres => {
                self.catalog_exec(
                    "insert into roost.tenant_scripts (tenant, kind, name, name_lower, body, meta) values ($1, $2, $3, $4, $5, $6) \
                     on conflict (tenant, kind, name_lower) do update set body = excluded.body, meta = excluded.meta, updated_at = now() \
                     where roost.tenant_scripts.body <> excluded.body or roost.tenant_scripts.meta <> excluded.meta",
                    &[&t.record.name, kind.as_str(), name, &name.to_ascii_lowercase(), body, &meta],
                )
                .await?;
            }
        }
        self.forget(tenant);
        self.changed().await
    }

    /// Deletes a script.
    pub async fn delete_script(&self, tenant: &str, kind: ScriptKind, name: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from tenant_scripts where tenant = ? and kind = ? and name = ?",
            Dialect::Postgres => "delete from roost.tenant_scripts where tenant = $1 and kind = $2 and name_lower = lower($3)",
        };
        let n = self.catalog_exec(sql, &[&tenant.to_ascii_lowercase(), kind.as_str(), name]).await?;
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        self.forget(tenant);
        self.changed().await
    }

    /// Appends script log lines of a tenant; a message longer than [`MAX_LOG_MESSAGE_CHARS`] or a
    /// source longer than [`MAX_LOG_SOURCE_CHARS`] is cut (whoever wrote it).
    pub async fn append_logs(&self, tenant: &str, lines: &[(String, String, String)]) -> Result<()> {
        let now = now_iso();
        for (level, source, message) in lines {
            let (source, message) = (cut(source, MAX_LOG_SOURCE_CHARS), cut(message, MAX_LOG_MESSAGE_CHARS));
            match self.dialect() {
                Dialect::Sqlite => {
                    self.catalog_exec(
                        "insert into script_logs (tenant, time, level, source, message) values (?, ?, ?, ?, ?)",
                        &[tenant, &now, level, source, message],
                    )
                    .await?
                }
                Dialect::Postgres => {
                    self.catalog_exec(
                        "insert into roost.script_logs (tenant, level, source, message) values ($1, $2, $3, $4)",
                        &[tenant, level, source, message],
                    )
                    .await?
                }
            };
        }
        Ok(())
    }

    /// How many of a tenant's newest `newest` log lines have each level.
    pub async fn log_level_counts(&self, tenant: &str, newest: i64) -> Result<Vec<(roost_api::LogLevel, u64)>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "select level, count(*) from (select level from script_logs where tenant = ? order by id desc limit cast(? as integer)) group by level"
            }
            Dialect::Postgres => {
                "select level, count(*) from (select level from roost.script_logs where tenant = $1 order by id desc limit $2::bigint) l group by level"
            }
        };
        let rows: Vec<(String, i64)> = self.catalog_query(sql, &[&tenant.to_ascii_lowercase(), &newest.to_string()]).await?;
        Ok(rows.into_iter().filter_map(|(l, n)| Some((roost_api::LogLevel::parse(&l)?, n.max(0) as u64))).collect())
    }

    /// Keeps a tenant's newest `keep` log lines and deletes the older ones.
    pub async fn prune_logs(&self, tenant: &str, keep: i64) -> Result<u64> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "delete from script_logs where tenant = ? and id <= (select id from script_logs where tenant = ? order by id desc limit 1 offset cast(? as integer))"
            }
            Dialect::Postgres => {
                "delete from roost.script_logs where tenant = $1 and id <= (select id from roost.script_logs where tenant = $2 order by id desc limit 1 offset $3::bigint)"
            }
        };
        self.catalog_exec(sql, &[tenant, tenant, &keep.to_string()]).await
    }

    /// Deletes a tenant's log lines older than `before` (ISO-8601) and, beyond the newest lines whose
    /// messages and sources add up to `max_bytes`, the older ones. Returns the lines deleted.
    pub async fn prune_logs_by(&self, tenant: &str, before: &str, max_bytes: i64) -> Result<u64> {
        let (by_age, by_bytes) = match self.dialect() {
            Dialect::Sqlite => (
                "delete from script_logs where tenant = ? and time < ?",
                "delete from script_logs where tenant = ? and id <= (select id from (select id, sum(length(message) + length(source)) over (order by id desc) as total from script_logs where tenant = ?) where total > cast(? as integer) order by id desc limit 1)",
            ),
            Dialect::Postgres => (
                "delete from roost.script_logs where tenant = $1 and time < $2::timestamptz",
                "delete from roost.script_logs where tenant = $1 and id <= (select id from (select id, sum(octet_length(message) + octet_length(source)) over (order by id desc) as total from roost.script_logs where tenant = $2) t where total > $3::bigint order by id desc limit 1)",
            ),
        };
        let mut n = self.catalog_exec(by_age, &[tenant, before]).await?;
        n += self.catalog_exec(by_bytes, &[tenant, tenant, &max_bytes.to_string()]).await?;
        Ok(n)
    }

    /// The newest log line id of a tenant (0 when it has none).
    pub async fn newest_log_id(&self, tenant: &str) -> Result<i64> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select coalesce(max(id), 0) from script_logs where tenant = ?",
            Dialect::Postgres => "select coalesce(max(id), 0)::bigint from roost.script_logs where tenant = $1",
        };
        let rows: Vec<(i64,)> = self.catalog_query(sql, &[&tenant.to_ascii_lowercase()]).await?;
        Ok(rows.first().map(|r| r.0).unwrap_or(0))
    }

    /// A tenant's log lines after `after_id`, oldest first, at most `limit`.
    pub async fn logs(&self, tenant: &str, after_id: i64, limit: i64) -> Result<Vec<LogLine>> {
        self.logs_filtered(tenant, &LogFilter { after: after_id, limit, ..LogFilter::default() }).await
    }

    /// A tenant's log lines matching `filter`: oldest first after `filter.after`, or newest first
    /// (before `filter.before`, if given) when `filter.newest_first`.
    pub async fn logs_filtered(&self, tenant: &str, filter: &LogFilter) -> Result<Vec<LogLine>> {
        let pg = self.dialect() == Dialect::Postgres;
        let mut binds: Vec<String> = vec![tenant.to_ascii_lowercase()];
        let next = |binds: &mut Vec<String>, v: String, cast: &str| {
            binds.push(v);
            if pg {
                format!("${}{}", binds.len(), cast)
            } else if cast == "::bigint" {
                "cast(? as integer)".to_string()
            } else {
                "?".to_string()
            }
        };
        let mut sql = if pg {
            // The text form gets its own name: `order by id` would otherwise sort that output column as text.
            format!("select id, to_char(time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as time, level, substr(source, 1, {MAX_LOG_SOURCE_CHARS}) as source, substr(message, 1, {MAX_LOG_MESSAGE_CHARS}) as message from roost.script_logs where tenant = $1")
        } else {
            // Lines stored before messages were capped are cut when read (the answer stays bounded).
            format!("select id, time, level, substr(source, 1, {MAX_LOG_SOURCE_CHARS}) as source, substr(message, 1, {MAX_LOG_MESSAGE_CHARS}) as message from script_logs where tenant = ?")
        };
        if filter.after > 0 {
            sql += &format!(" and id > {}", next(&mut binds, filter.after.to_string(), "::bigint"));
        }
        if let Some(before) = filter.before {
            sql += &format!(" and id < {}", next(&mut binds, before.to_string(), "::bigint"));
        }
        if let Some(level) = &filter.level {
            sql += &format!(" and level = {}", next(&mut binds, level.as_str().to_string(), ""));
        }
        let like = if pg { "ilike" } else { "like" };
        if let Some(source) = &filter.source {
            sql += &format!(" and source {like} {} escape '\\'", next(&mut binds, like_pattern(source), ""));
        }
        if let Some(text) = &filter.text {
            sql += &format!(" and message {like} {} escape '\\'", next(&mut binds, like_pattern(text), ""));
        }
        if let Some(since) = &filter.since {
            sql += &format!(" and time >= {}", next(&mut binds, since.clone(), "::timestamptz"));
        }
        if let Some(until) = &filter.until {
            sql += &format!(" and time < {}", next(&mut binds, until.clone(), "::timestamptz"));
        }
        sql += if filter.newest_first { " order by id desc" } else { " order by id" };
        sql += &format!(" limit {}", next(&mut binds, filter.limit.to_string(), "::bigint"));
        let refs: Vec<&str> = binds.iter().map(String::as_str).collect();
        self.catalog_query(&sql, &refs).await
    }

    /// Claims a job run for `due` (ISO-8601); `false` if another node (or an earlier tick) has it.
    pub async fn claim_job_run(&self, tenant: &str, job: &str, due: &str) -> Result<bool> {
        let job = job.to_ascii_lowercase();
        let n = match self.dialect() {
            Dialect::Sqlite => {
                self.catalog_exec(
                    "insert into job_runs (tenant, job, due, started_at) values (?, ?, ?, ?) on conflict do nothing",
                    &[tenant, &job, due, &now_iso()],
                )
                .await?
            }
            Dialect::Postgres => {
                self.catalog_exec("insert into roost.job_runs (tenant, job, due) values ($1, $2, $3::timestamptz) on conflict do nothing", &[tenant, &job, due])
                    .await?
            }
        };
        Ok(n == 1)
    }

    /// Records the outcome of a claimed run.
    pub async fn finish_job_run(&self, tenant: &str, job: &str, due: &str, outcome: &roost_api::JobOutcome, duration_ms: i64) -> Result<()> {
        let job = job.to_ascii_lowercase();
        let sql = match self.dialect() {
            Dialect::Sqlite => "update job_runs set finished_at = ?, outcome = ?, duration_ms = cast(? as integer) where tenant = ? and job = ? and due = ?",
            Dialect::Postgres => "update roost.job_runs set finished_at = $1::timestamptz, outcome = $2, duration_ms = $3::bigint where tenant = $4 and job = $5 and due = $6::timestamptz",
        };
        self.catalog_exec(sql, &[&now_iso(), &outcome.to_string(), &duration_ms.to_string(), tenant, &job, due]).await?;
        Ok(())
    }

    /// The latest runs of a job, newest first.
    pub async fn job_runs(&self, tenant: &str, job: &str, limit: i64) -> Result<Vec<JobRun>> {
        let fmt = |c: &str| format!("to_char({c} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
        let sql = match self.dialect() {
            Dialect::Sqlite => "select job, due, started_at, outcome, duration_ms from job_runs where tenant = ? and job = ? order by id desc limit cast(? as integer)".to_string(),
            Dialect::Postgres => format!(
                "select job, {} as due, {} as started_at, outcome, duration_ms from roost.job_runs where tenant = $1 and job = $2 order by id desc limit $3::bigint",
                fmt("due"),
                fmt("started_at")
            ),
        };
        let rows: Vec<JobRunRow> = self.catalog_query(&sql, &[&tenant.to_ascii_lowercase(), &job.to_ascii_lowercase(), &limit.to_string()]).await?;
        Ok(rows.into_iter().map(JobRun::from).collect())
    }
}

/// The longest log message stored or answered, in characters (as the script engine's own cap).
pub const MAX_LOG_MESSAGE_CHARS: usize = 10_000;

/// The longest log source (a script path) stored or answered, in characters.
pub const MAX_LOG_SOURCE_CHARS: usize = 256;

/// `text` cut to `max` characters.
fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
