//! Platform management: tenants, keys, settings, tables, columns, permissions. One implementation for
//! the CLI and for `/manage/v1`, so both behave the same and print the same shapes (`roost-api`).

use crate::auth;
use crate::config::TenantMaxima;
use roost_api::{
    ColumnIn, ColumnOut, IdKind, JobRunOut, KeyKind, KeyOut, LogOut, ScriptIn, ScriptOut, TableIn, TableOut, TablePermissions, TenantOut, TenantSettings,
    TenantSettingsPatch,
};
use roost_odata::sql::ColType;
use roost_storage::scripts::{ScriptKind, ScriptRecord};
use roost_storage::{Storage, StorageError, TableRecord, TenantRecord};

/// A failed management operation.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// 404
    #[error("{0} does not exist.")]
    NotFound(String),
    /// 400
    #[error("{0}")]
    BadInput(String),
    /// 409
    #[error("{0} already exists.")]
    Conflict(String),
    /// 500
    #[error("{0}")]
    Internal(String),
    /// 401: no or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 429: too many failed sign-ins; retry after this many seconds.
    #[error("Too many failed sign-ins. Try again in {0} seconds.")]
    TooManyAttempts(u64),
    /// 429: a bounded resource of this node is in use (the message says which); retry after 5 seconds.
    #[error("{0}")]
    Busy(String),
    /// 400 for a script that does not parse, with its position.
    #[error("Syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// The parser's message.
        message: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
    },
}

impl ManageError {
    pub fn from_storage(e: StorageError, what: impl FnOnce() -> String) -> Self {
        match e {
            StorageError::NotFound => ManageError::NotFound(what()),
            StorageError::AlreadyExists(w) => ManageError::Conflict(w),
            StorageError::BadInput(m) => ManageError::BadInput(m),
            other => ManageError::Internal(other.to_string()),
        }
    }
}

/// `Result` with [`ManageError`].
pub type Result<T, E = ManageError> = std::result::Result<T, E>;

/// The wire form of a tenant.
pub fn tenant_out(r: &TenantRecord) -> TenantOut {
    TenantOut {
        name: r.name.clone(),
        application_key: r.application_key.clone(),
        master_key: r.master_key.clone(),
        settings: r.settings.clone(),
        created_at: r.created_at.clone(),
        url: format!("/t/{}/", r.name),
    }
}

/// Who changes a tenant's settings: only an admin may open outbound access to private addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsBy {
    /// A platform admin (admin role, the admin token, the CLI on the server's machine).
    Admin,
    /// A tenant owner.
    Owner,
}

/// Checks settings against their own rules and the platform's ceilings (`max`).
fn validate_settings(s: &TenantSettings, max: &TenantMaxima) -> Result<()> {
    for (name, value, least, most) in max.bounds(s) {
        if value < least || value > most {
            return Err(ManageError::BadInput(format!("{name} must be between {least} and {most} (the maximum of its tier and the platform).")));
        }
    }
    for o in &s.cors_origins {
        if o.is_empty() || o.len() > 253 || !o.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*')) {
            return Err(ManageError::BadInput(format!("'{o}' is not a valid CORS host pattern (letters, digits, '-', '.', '*').")));
        }
    }
    if let Some(k) = s.app_settings.keys().find(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')) {
        return Err(ManageError::BadInput(format!("'{k}' is not a valid app setting name (letters, digits, '_', '.', '-').")));
    }
    Ok(())
}

/// Only an admin may let a tenant reach loopback and private addresses.
fn check_outbound(by: SettingsBy, before: &[String], after: &[String]) -> Result<()> {
    if by == SettingsBy::Owner && before != after {
        return Err(ManageError::Forbidden("Only a platform admin may change outbound_allow (the private addresses a tenant's scripts may reach).".into()));
    }
    Ok(())
}

/// Creates a tenant with fresh keys. Default settings are lowered to the platform's ceilings.
pub async fn create_tenant(storage: &Storage, max: &TenantMaxima, by: SettingsBy, name: &str, settings: Option<TenantSettings>) -> Result<TenantOut> {
    let settings = settings.unwrap_or_else(|| {
        let mut s = TenantSettings::default();
        max.clamp(&mut s);
        s
    });
    check_outbound(by, &[], &settings.outbound_allow)?;
    validate_settings(&settings, max)?;
    let r = storage
        .create_tenant(name, &auth::generate_key(), &auth::generate_key(), &settings)
        .await
        .map_err(|e| ManageError::from_storage(e, || format!("Tenant '{name}'")))?;
    tracing::info!(tenant.name = %r.name, "Created tenant `{}`", r.name);
    Ok(tenant_out(&r))
}

async fn record(storage: &Storage, name: &str) -> Result<TenantRecord> {
    storage
        .tenant(name)
        .await
        .map_err(|e| ManageError::Internal(e.to_string()))?
        .map(|t| t.record.clone())
        .ok_or_else(|| ManageError::NotFound(format!("Tenant '{name}'")))
}

/// Shows a tenant.
pub async fn show_tenant(storage: &Storage, name: &str) -> Result<TenantOut> {
    Ok(tenant_out(&record(storage, name).await?))
}

/// Lists tenants.
pub async fn list_tenants(storage: &Storage) -> Result<Vec<TenantOut>> {
    Ok(storage.list_tenants().await.map_err(|e| ManageError::Internal(e.to_string()))?.iter().map(tenant_out).collect())
}

/// Deletes a tenant and its data.
pub async fn delete_tenant(storage: &Storage, name: &str) -> Result<()> {
    storage.delete_tenant(name).await.map_err(|e| ManageError::from_storage(e, || format!("Tenant '{name}'")))?;
    tracing::info!(tenant.name = %name, "Deleted tenant `{name}`");
    Ok(())
}

/// Applies a settings patch.
pub async fn update_settings(storage: &Storage, max: &TenantMaxima, by: SettingsBy, name: &str, patch: &TenantSettingsPatch) -> Result<TenantOut> {
    let mut r = record(storage, name).await?;
    if let Some(v) = &patch.outbound_allow {
        check_outbound(by, &r.settings.outbound_allow, v)?;
    }
    // Stored values above a ceiling lowered since (a new tier) are clamped first, so a patch of
    // other settings still saves; a value the patch gives above its ceiling is refused.
    max.clamp(&mut r.settings);
    r.settings.apply(patch);
    validate_settings(&r.settings, max)?;
    storage.update_tenant(&r).await.map_err(|e| ManageError::from_storage(e, || format!("Tenant '{name}'")))?;
    Ok(tenant_out(&r))
}

/// Regenerates the `application` or `master` key.
pub async fn regenerate_key(storage: &Storage, name: &str, kind: KeyKind) -> Result<KeyOut> {
    let mut r = record(storage, name).await?;
    let key = auth::generate_key();
    match kind {
        KeyKind::Application => r.application_key = key.clone(),
        KeyKind::Master => r.master_key = key.clone(),
    }
    storage.update_tenant(&r).await.map_err(|e| ManageError::from_storage(e, || format!("Tenant '{name}'")))?;
    if kind == KeyKind::Master {
        // A new master key revokes every user token, as in Mobile Services: a token secret of an
        // earlier revocation would otherwise keep the old tokens valid.
        storage.set_token_secret(&r.name, None).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    }
    tracing::info!(tenant.name = %r.name, key.kind = kind.as_str(), "Regenerated the {} key of `{}`", kind.as_str(), r.name);
    Ok(KeyOut { kind, key })
}

/// Revokes every user token of a tenant (login tokens, tokens scripts minted, `tenant token`): their
/// signing secret is replaced; the keys stay. Tokens a script signs itself with the master key (the
/// Mobile Services custom-authentication sample) are refused from then on: such scripts move to
/// `require('roost-auth').createToken`.
pub async fn revoke_tokens(storage: &Storage, name: &str) -> Result<roost_api::RevokedOut> {
    let r = record(storage, name).await?;
    storage.set_token_secret(&r.name, Some(&auth::generate_key())).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    tracing::info!(tenant.name = %r.name, "Revoked every user token of `{}`", r.name);
    Ok(roost_api::RevokedOut { revoked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true) })
}

/// Mints a user token for a tenant (`uid` = `user_id`).
pub async fn mint_token(storage: &Storage, name: &str, user_id: &str, ttl_seconds: i64) -> Result<String> {
    if user_id.trim().is_empty() {
        return Err(ManageError::BadInput("A user id is required (for example Custom:42).".into()));
    }
    if ttl_seconds <= 0 {
        return Err(ManageError::BadInput("The token lifetime must be positive.".into()));
    }
    let t = storage.tenant(name).await.map_err(|e| ManageError::Internal(e.to_string()))?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{name}'")))?;
    Ok(auth::mint_token(t.token_key(), user_id, ttl_seconds))
}

fn type_name(t: ColType) -> &'static str {
    match t {
        ColType::String => "string",
        ColType::Number => "number",
        ColType::Boolean => "boolean",
        ColType::Date => "date",
        ColType::Binary => "binary",
        ColType::Integer => "integer",
    }
}

/// Describes a table.
pub async fn show_table(storage: &Storage, tenant: &str, table: &str) -> Result<TableOut> {
    let t =
        storage.tenant(tenant).await.map_err(|e| ManageError::Internal(e.to_string()))?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    let tbl = t.table(table).ok_or_else(|| ManageError::NotFound(format!("Table '{table}'")))?;
    let cols = t.columns(&tbl, true).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    let indexes =
        roost_storage::ddl::read_auto_indexes(&t.db, t.schema.as_deref(), &tbl.record.name, &cols).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    Ok(TableOut {
        indexes,
        name: tbl.record.name.clone(),
        id_kind: tbl.record.id_kind,
        soft_delete: tbl.record.soft_delete,
        permissions: tbl.record.permissions,
        columns: cols
            .iter()
            .map(|c| ColumnOut { name: c.name.clone(), ty: type_name(c.ty).into(), system: c.name == "id" || c.name.starts_with("__") })
            .collect(),
    })
}

/// Lists a tenant's tables.
pub async fn list_tables(storage: &Storage, tenant: &str) -> Result<Vec<TableOut>> {
    let t =
        storage.tenant(tenant).await.map_err(|e| ManageError::Internal(e.to_string()))?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    let mut out = Vec::new();
    for tbl in t.tables() {
        out.push(show_table(storage, tenant, &tbl.record.name).await?);
    }
    Ok(out)
}

/// Creates a table.
pub async fn create_table(storage: &Storage, tiers: &crate::monitor::tiers::Tiers, tenant: &str, spec: &TableIn) -> Result<TableOut> {
    if spec.soft_delete && spec.id_kind == IdKind::Integer {
        return Err(ManageError::BadInput("Soft delete needs a string-id table (integer-id tables have no system columns).".into()));
    }
    // The tier's number of tables.
    let r = record(storage, tenant).await?;
    let (tier_name, tier) = tiers.of(&r.tier);
    let tables = list_tables(storage, &r.name).await?.len() as u64;
    if tables >= tier.max_tables {
        return Err(ManageError::Forbidden(format!("The tier '{tier_name}' allows {} tables; this service has {tables}.", tier.max_tables)));
    }
    let rec = TableRecord { name: spec.name.clone(), id_kind: spec.id_kind, soft_delete: spec.soft_delete, permissions: spec.permissions };
    storage.create_table(tenant, &rec).await.map_err(|e| ManageError::from_storage(e, || format!("Tenant '{tenant}'")))?;
    tracing::info!(tenant.name = %tenant, table.name = %spec.name, "Created table `{}`", spec.name);
    show_table(storage, tenant, &spec.name).await
}

/// Drops a table.
pub async fn drop_table(storage: &Storage, tenant: &str, table: &str) -> Result<()> {
    storage.drop_table(tenant, table).await.map_err(|e| ManageError::from_storage(e, || format!("Table '{table}' of tenant '{tenant}'")))?;
    tracing::info!(tenant.name = %tenant, table.name = %table, "Dropped table `{table}`");
    Ok(())
}

/// Replaces a table's permissions.
pub async fn set_permissions(storage: &Storage, tenant: &str, table: &str, p: &TablePermissions) -> Result<TableOut> {
    storage.set_permissions(tenant, table, p).await.map_err(|e| ManageError::from_storage(e, || format!("Table '{table}' of tenant '{tenant}'")))?;
    show_table(storage, tenant, table).await
}

/// Adds a column.
pub async fn add_column(storage: &Storage, tenant: &str, table: &str, c: &ColumnIn) -> Result<TableOut> {
    let ty = match c.ty.to_ascii_lowercase().as_str() {
        "string" | "text" => ColType::String,
        "number" | "float" | "double" => ColType::Number,
        "boolean" | "bool" => ColType::Boolean,
        "date" | "datetime" => ColType::Date,
        other => return Err(ManageError::BadInput(format!("'{other}' is not a column type (string, number, boolean, date)."))),
    };
    storage.add_column(tenant, table, &c.name, ty).await.map_err(|e| ManageError::from_storage(e, || format!("Table '{table}' of tenant '{tenant}'")))?;
    show_table(storage, tenant, table).await
}

/// Drops a column.
pub async fn drop_column(storage: &Storage, tenant: &str, table: &str, column: &str) -> Result<TableOut> {
    storage.drop_column(tenant, table, column).await.map_err(|e| ManageError::from_storage(e, || format!("Column '{column}' of table '{table}'")))?;
    show_table(storage, tenant, table).await
}

/// Parses a script kind name of the management API and CLI.
pub fn parse_script_kind(kind: &str) -> Result<ScriptKind> {
    ScriptKind::parse(&kind.to_ascii_lowercase())
        .ok_or_else(|| ManageError::BadInput(format!("'{kind}' is not a script kind (table, api, job, shared, extension).")))
}

fn is_script_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && !name.starts_with('-')
}

/// Checks a script's name for its kind; returns the name to store and the kind to check its syntax as.
async fn script_identity(storage: &Storage, tenant: &str, kind: ScriptKind, name: &str) -> Result<(String, roost_scripts::ScriptKind)> {
    let t =
        storage.tenant(tenant).await.map_err(|e| ManageError::Internal(e.to_string()))?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    let name = name.strip_suffix(".js").unwrap_or(name);
    Ok(match kind {
        ScriptKind::Table => {
            let (table, op) = name
                .rsplit_once('.')
                .ok_or_else(|| ManageError::BadInput(format!("'{name}' is not a table script name: use <table>.<insert|read|update|delete>.")))?;
            let op = op.to_ascii_lowercase();
            if !TablePermissions::OPERATIONS.contains(&op.as_str()) {
                return Err(ManageError::BadInput(format!("'{op}' is not a table operation (insert, read, update, delete).")));
            }
            let tbl = t.table(table).ok_or_else(|| ManageError::NotFound(format!("Table '{table}'")))?;
            (format!("{}.{op}", tbl.record.name), roost_scripts::ScriptKind::Table(op))
        }
        ScriptKind::Extension => {
            // Both are CommonJS modules: `exports.startup` (§6.12) and `exports.register` (push.js).
            let name = name.to_ascii_lowercase();
            if name != "startup" && name != "push" {
                return Err(ManageError::BadInput(format!("'{name}' is not a supported extension (startup, push).")));
            }
            (name, roost_scripts::ScriptKind::Startup)
        }
        _ if !is_script_name(name) => {
            return Err(ManageError::BadInput(format!("'{name}' is not a valid script name (letters, digits, '_' and '-', at most 128).")))
        }
        ScriptKind::Api => (name.to_string(), roost_scripts::ScriptKind::Api),
        ScriptKind::Job => (name.to_string(), roost_scripts::ScriptKind::Job(name.to_string())),
        ScriptKind::Shared => (name.to_string(), roost_scripts::ScriptKind::Shared),
    })
}

fn script_out(s: &ScriptRecord) -> ScriptOut {
    ScriptOut {
        kind: s.kind.as_str().to_string(),
        name: s.name.clone(),
        path: s.source(),
        body: s.body.to_string(),
        updated_at: s.updated_at.clone(),
        permissions: s.meta.get("permissions").and_then(|p| serde_json::from_value(p.clone()).ok()),
        schedule: s.meta.get("schedule").and_then(|p| serde_json::from_value(p.clone()).ok()),
    }
}

/// Creates or replaces a script after checking its syntax (400 with line and column).
pub async fn put_script(storage: &Storage, tenant: &str, kind: &str, name: &str, input: &ScriptIn) -> Result<ScriptOut> {
    let kind = parse_script_kind(kind)?;
    let (name, syntax_kind) = script_identity(storage, tenant, kind, name).await?;
    if input.body.len() > 1 << 20 {
        return Err(ManageError::BadInput("A script may have at most 1 MiB of text.".into()));
    }
    roost_scripts::check_syntax(&syntax_kind, &input.body).map_err(|e| ManageError::Syntax { message: e.message, line: e.line, column: e.column })?;
    let mut meta = serde_json::Map::new();
    if let Some(p) = &input.permissions {
        // API routes (api/<name>.json) and the push routes (extensions/push.json, §5.2).
        if !(kind == ScriptKind::Api || kind == ScriptKind::Extension && name == "push") {
            return Err(ManageError::BadInput("Only API scripts and extensions/push have permissions.".into()));
        }
        meta.insert("permissions".into(), serde_json::to_value(p).map_err(|e| ManageError::Internal(e.to_string()))?);
    }
    if let Some(s) = &input.schedule {
        if kind != ScriptKind::Job {
            return Err(ManageError::BadInput("Only jobs have a schedule.".into()));
        }
        let mut s = s.clone();
        if s.interval == 0 {
            return Err(ManageError::BadInput("A schedule's interval must be at least 1.".into()));
        }
        match &s.start {
            Some(start) => {
                let d = roost_odata::parse_strict_datetime(start)
                    .ok_or_else(|| ManageError::BadInput(format!("'{start}' is not an ISO-8601 UTC time (2026-01-31T08:00:00.000Z).")))?;
                s.start = Some(roost_odata::format_datetime(&d));
            }
            None => s.start = Some(roost_odata::format_datetime(&chrono::Utc::now())),
        }
        meta.insert("schedule".into(), serde_json::to_value(&s).map_err(|e| ManageError::Internal(e.to_string()))?);
    }
    // A bundled package the script requires and the tenant does not declare is installed first
    // (a failed install saves nothing).
    let pending = prepare_packages(storage, tenant, None, &[&input.body]).await?;
    storage
        .put_script(tenant, kind, &name, &input.body, &serde_json::Value::Object(meta))
        .await
        .map_err(|e| ManageError::from_storage(e, || format!("Tenant '{tenant}'")))?;
    if let Some(p) = pending {
        commit_packages(storage, tenant, &p).await?;
    }
    tracing::info!(tenant.name = %tenant, script.kind = kind.as_str(), script.name = %name, "Saved script `{name}`");
    get_script(storage, tenant, kind.as_str(), &name).await
}

/// One script.
pub async fn get_script(storage: &Storage, tenant: &str, kind: &str, name: &str) -> Result<ScriptOut> {
    let kind = parse_script_kind(kind)?;
    let t =
        storage.tenant(tenant).await.map_err(|e| ManageError::Internal(e.to_string()))?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    let name = name.strip_suffix(".js").unwrap_or(name);
    t.script(kind, name).map(|s| script_out(&s)).ok_or_else(|| ManageError::NotFound(format!("Script '{}/{name}'", kind.folder())))
}

/// All scripts of a tenant.
pub async fn list_scripts(storage: &Storage, tenant: &str) -> Result<Vec<ScriptOut>> {
    let t =
        storage.tenant(tenant).await.map_err(|e| ManageError::Internal(e.to_string()))?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    Ok(t.scripts().iter().map(|s| script_out(s)).collect())
}

/// Deletes a script.
pub async fn delete_script(storage: &Storage, tenant: &str, kind: &str, name: &str) -> Result<()> {
    let kind = parse_script_kind(kind)?;
    let name = name.strip_suffix(".js").unwrap_or(name);
    storage.delete_script(tenant, kind, name).await.map_err(|e| ManageError::from_storage(e, || format!("Script '{}/{name}'", kind.folder())))
}

/// A tenant's script logs: oldest first after `q.after` (live tail), or newest first with
/// `order=desc` (before `q.before`); filtered by level, source, text and time range.
pub async fn logs(storage: &Storage, tenant: &str, q: &roost_api::LogQuery) -> Result<Vec<LogOut>> {
    record(storage, tenant).await?;
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(ManageError::BadInput(format!("order must be 'asc' or 'desc', not '{other}'."))),
    };
    let level = match &q.level {
        Some(l) => {
            Some(roost_api::LogLevel::parse(l).ok_or_else(|| ManageError::BadInput(format!("level must be 'information', 'warning' or 'error', not '{l}'.")))?)
        }
        None => None,
    };
    for t in [&q.since, &q.until].into_iter().flatten() {
        if chrono::DateTime::parse_from_rfc3339(t).is_err() {
            return Err(ManageError::BadInput(format!("'{t}' is not an ISO-8601 time with a zone (e.g. 2026-01-31T12:00:00Z).")));
        }
    }
    let utc = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|d| d.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    let filter = roost_storage::scripts::LogFilter {
        after: q.after,
        before: q.before,
        level,
        source: q.source.clone().filter(|s| !s.is_empty()),
        text: q.q.clone().filter(|s| !s.is_empty()),
        since: utc(&q.since),
        until: utc(&q.until),
        newest_first,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let lines = storage.logs_filtered(tenant, &filter).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    // An answer holds at most MAX_LOG_ANSWER_BYTES of messages (always at least one line); the
    // client pages on with `after` or `before` from the last line it got.
    let mut bytes = 0;
    Ok(lines
        .into_iter()
        .take_while(|l| {
            let first = bytes == 0;
            bytes += l.message.len() + l.source.len() + 64;
            first || bytes <= MAX_LOG_ANSWER_BYTES
        })
        .map(|l| LogOut { id: l.id, time: l.time, level: l.level, source: l.source, message: l.message })
        .collect())
}

/// The most bytes of log lines one `…/logs` answer holds.
pub const MAX_LOG_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// What support staff watch of a tenant: counts, jobs with their latest run, recent log levels.
pub async fn monitor(storage: &Storage, tenant: &str) -> Result<roost_api::MonitorOut> {
    let r = record(storage, tenant).await?;
    let tables = list_tables(storage, &r.name).await?.len() as u64;
    let scripts = list_scripts(storage, &r.name).await?;
    let mut jobs = Vec::new();
    for s in scripts.iter().filter(|s| s.kind == "job") {
        let last_run = job_runs(storage, &r.name, &s.name, 1).await?.into_iter().next();
        jobs.push(roost_api::JobMonitor { name: s.name.clone(), enabled: s.schedule.as_ref().is_some_and(|x| x.enabled), last_run });
    }
    // Counted in the database: the answer never holds the lines themselves.
    let counts = storage.log_level_counts(&r.name, 1000).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    let mut levels: Vec<(String, u64)> = roost_api::LogLevel::ALL.iter().map(|l| (l.to_string(), 0)).collect();
    for (level, n) in counts {
        if let Some(e) = levels.iter_mut().find(|(l, _)| l == level.as_str()) {
            e.1 += n;
        }
    }
    Ok(roost_api::MonitorOut { name: r.name, tables, scripts: scripts.len() as u64, jobs, recent_log_levels: levels })
}

/// The tenant list without keys or settings; `only` restricts it to these (lower-case) names.
pub async fn tenant_summaries(storage: &Storage, only: Option<&[String]>) -> Result<Vec<roost_api::TenantSummary>> {
    Ok(list_tenants(storage)
        .await?
        .into_iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.name)))
        .map(|t| roost_api::TenantSummary { name: t.name, created_at: t.created_at, url: t.url })
        .collect())
}

/// The latest runs of a job.
pub async fn job_runs(storage: &Storage, tenant: &str, job: &str, limit: i64) -> Result<Vec<JobRunOut>> {
    record(storage, tenant).await?;
    let runs = storage.job_runs(tenant, job, limit.clamp(1, 1000)).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    Ok(runs.into_iter().map(|r| JobRunOut { job: r.job, due: r.due, started_at: r.started_at, outcome: r.outcome, duration_ms: r.duration_ms }).collect())
}

pub use crate::packages::Pending as PendingPackages;

/// Works out a tenant's packages for a new `package.json` (`manifest`, or the stored one when
/// `None`) and the scripts `also` (besides the stored ones), installing them; `None` when nothing
/// changes. Nothing is stored here.
pub async fn prepare_packages(storage: &Storage, tenant: &str, manifest: Option<&str>, also: &[&str]) -> Result<Option<PendingPackages>> {
    let r = record(storage, tenant).await?;
    let stored = storage.package_record(&r.name).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    let scripts = list_scripts(storage, &r.name).await?;
    let texts = scripts.iter().map(|s| s.body.as_str()).chain(also.iter().copied());
    let limits = crate::packages::Limits::of(&r.settings);
    crate::packages::prepare(&crate::packages::root(storage.data_dir()), manifest, stored.as_ref(), texts, limits).await
}

/// Stores prepared packages (every node switches to the new install) and logs what Roost added.
pub async fn commit_packages(storage: &Storage, tenant: &str, p: &PendingPackages) -> Result<()> {
    storage.put_packages(tenant, &p.manifest, &p.lock, &p.lock_hash).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    if !p.added.is_empty() {
        let line = format!(
            "Added {} to package.json: the Mobile Services runtime bundled {}, and a script requires {}.",
            p.added.join(", "),
            if p.added.len() == 1 { "it" } else { "them" },
            if p.added.len() == 1 { "it" } else { "them" }
        );
        tracing::info!(tenant.name = %tenant, "{line}");
        let _ = storage.append_logs(&tenant.to_ascii_lowercase(), &[("information".into(), "/package.json".into(), line)]).await;
    }
    Ok(())
}

/// The tenant's `package.json` and resolved versions.
pub async fn packages(storage: &Storage, tenant: &str) -> Result<roost_api::PackagesOut> {
    let r = record(storage, tenant).await?;
    let p = storage.package_record(&r.name).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    Ok(roost_api::PackagesOut {
        resolved: p.as_ref().map(|p| crate::packages::resolved_versions(&p.lock)).unwrap_or_default(),
        lock_hash: p.as_ref().map(|p| p.lock_hash.clone()).filter(|h| !h.is_empty()),
        package_json: p.map(|p| p.manifest),
        added: Vec::new(),
    })
}

/// Replaces the tenant's `package.json`: installs first; on failure the previous packages stay.
pub async fn set_packages(storage: &Storage, tenant: &str, manifest: &str) -> Result<roost_api::PackagesOut> {
    let p = prepare_packages(storage, tenant, Some(manifest), &[]).await?.ok_or_else(|| ManageError::Internal("no packages prepared".into()))?;
    commit_packages(storage, tenant, &p).await?;
    let mut out = packages(storage, tenant).await?;
    out.added = p.added;
    Ok(out)
}
