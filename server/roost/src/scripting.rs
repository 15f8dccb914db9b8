//! The server side of scripts: `impl ScriptHost` (tables, the request's default operation, outbound
//! HTTP, shared modules, logs), running an invocation for an HTTP request, and the log writer.
//!
//! Host calls are the typed [`HostCall`]s; table calls go through the table service
//! (`crate::tables`), so a script's `execute()` validates and stores exactly as the plain HTTP
//! request would; `tables` calls skip permissions, scripts and the `$top` default (§6.6).

use crate::error::ApiError;
use crate::tables::{item, wire, ReadQuery, TableService};
use crate::AppState;
use futures::future::BoxFuture;
use roost_api::JobOutcome;
use roost_odata::sql::Value;
use roost_scripts::host::ExecuteOp;
use roost_scripts::{HostCall, HostError, LogLevel, ScriptBody, ScriptFailure, ScriptHost, ScriptLimits, ScriptResponse};
use roost_storage::scripts::ScriptKind;
use roost_storage::{StorageError, Table, Tenant};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Writes script log lines to the catalog in the background, in order.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<LogMsg>,
    /// Bumped after each batch is stored (what a live tail waits for).
    pub stored: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Applies a tenant's log retention: lines older than `log_retention_days` and, beyond the newest
/// `log_max_mb` of text, older lines are deleted (each clamped to its tier's and the platform's
/// ceiling).
pub async fn prune_tenant_logs(app: &crate::App, tenant: &str) {
    let Ok(Some(t)) = app.storage.tenant(tenant).await else { return };
    let max = app.maxima_for(&t.record);
    let days = t.record.settings.log_retention_days.clamp(1, max.log_retention_days.max(1));
    let mb = t.record.settings.log_max_mb.clamp(1, max.log_max_mb.max(1));
    let before = roost_odata::format_datetime(&(chrono::Utc::now() - chrono::Duration::days(days as i64)));
    let bytes = i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    match app.storage.prune_logs_by(tenant, &before, bytes).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(tenant.name = %tenant, lines = n, "Pruned log lines past their retention"),
        Err(e) => tracing::warn!(tenant.name = %tenant, error = %e, "Could not prune script logs"),
    }
}

/// Lines written between two retention passes.
const PRUNE_EVERY: usize = 1_000;

/// (level, source, message) of a log line.
type LogLine = (String, String, String);

enum LogMsg {
    Line(String, String, String, String),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl LogSink {
    /// Starts the writer task (a managed writer: on shutdown it stores what is queued, then ends).
    pub fn start(app: std::sync::Weak<crate::App>, tasks: &crate::tasks::Tasks) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogMsg>();
        tasks.spawn_writer(|last| async move {
            let mut written = 0usize;
            loop {
                let first = tokio::select! {
                    m = rx.recv() => m,
                    // Shutdown: what is queued is taken below; nothing is dropped.
                    _ = last.cancelled() => rx.try_recv().ok(),
                };
                let Some(first) = first else { return };
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let Some(app) = app.upgrade() else { return };
                let mut by_tenant: Vec<(String, Vec<LogLine>)> = Vec::new();
                let mut flushes = Vec::new();
                for m in batch {
                    match m {
                        LogMsg::Line(tenant, level, source, message) => match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
                            Some((_, v)) => v.push((level, source, message)),
                            None => by_tenant.push((tenant, vec![(level, source, message)])),
                        },
                        LogMsg::Flush(done) => flushes.push(done),
                    }
                }
                for (tenant, lines) in by_tenant {
                    if let Err(e) = app.storage.append_logs(&tenant, &lines).await {
                        tracing::warn!(tenant.name = %tenant, error = %e, "Could not store {} script log lines", lines.len());
                    }
                    // Retention: every so many lines, a tenant's log is cut back to its newest lines.
                    written += lines.len();
                    if written >= PRUNE_EVERY {
                        written = 0;
                        prune_tenant_logs(&app, &tenant).await;
                    }
                }
                // Live tails (`/logs/stream`) look for the new lines.
                app.logs.stored.send_modify(|n| *n = n.wrapping_add(1));
                for f in flushes {
                    let _ = f.send(());
                }
            }
        });
        Self { tx, stored: Arc::new(tokio::sync::watch::channel(0).0) }
    }

    /// Queues a line.
    pub fn write(&self, tenant: &str, level: LogLevel, source: &str, message: &str) {
        let _ = self.tx.send(LogMsg::Line(tenant.to_string(), level.as_str().to_string(), source.to_string(), message.to_string()));
    }

    /// Waits until every line queued so far is stored (the CLI calls it before exiting).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(LogMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How long `extensions/startup.js` may take before requests proceed without it (§6.12).
const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the tenant's `extensions/startup.js` once per version of the script across all processes
/// (the run is claimed in the catalog), waiting up to 5 s for its `done` (§6.12). Returns whether
/// this call ran it.
pub async fn run_startup(app: &AppState, tenant: &Arc<Tenant>) -> bool {
    let Some(script) = tenant.script(ScriptKind::Extension, "startup") else { return false };
    ensure_packages(app, tenant).await;
    let claimed = app.storage.claim_job_run(&tenant.record.name, "@startup", &script.updated_at).await;
    match claimed {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!(tenant.name = %tenant.record.name, error = %e, "Could not claim the startup run");
            return false;
        }
    }
    let started = std::time::Instant::now();
    let invocation = roost_scripts::Invocation { source: script.source(), script: script.body.clone(), entry: roost_scripts::Entry::Startup, input: json!({}) };
    let handle = app.scripts.invoke(
        &tenant.record.name,
        limits(tenant, &app.maxima_for(&tenant.record)),
        invocation,
        Arc::new(Host::new(app.clone(), tenant.clone(), Purpose::Background)),
    );
    // A script that ended without calling `done` can no longer call it: like the original, wait out
    // the 5 s and say so.
    let waited = tokio::time::timeout(STARTUP_WAIT, async {
        match handle.response.await {
            Ok(Ok(None)) | Err(_) => std::future::pending().await,
            other => other,
        }
    });
    let outcome = match waited.await {
        Ok(Ok(Ok(Some(r)))) if r.status < 400 => JobOutcome::Succeeded,
        Ok(Ok(Ok(Some(_)))) => JobOutcome::failed("done(error)"),
        // Mapped to `pending` above: only a timeout ends the wait without a response.
        Ok(Ok(Ok(None))) | Ok(Err(_)) => JobOutcome::failed("the script runtime went away"),
        Ok(Ok(Err(e))) => JobOutcome::failed(e),
        Err(_) => {
            app.logs.write(&tenant.record.name, LogLevel::Error, &script.source(), "'startup' of 'startup.js' failed to call 'done' method with in 5000 ms");
            JobOutcome::failed("done was not called within 5000 ms")
        }
    };
    let ms = started.elapsed().as_millis() as i64;
    let _ = app.storage.finish_job_run(&tenant.record.name, "@startup", &script.updated_at, &outcome, ms).await;
    true
}

/// Makes sure the tenant's startup extension has run (once per script version) before a request.
pub async fn ensure_started(app: &AppState, tenant: &Arc<Tenant>) {
    if !tenant.has_scripts() {
        return;
    }
    ensure_packages(app, tenant).await;
    let Some(script) = tenant.script(ScriptKind::Extension, "startup") else { return };
    {
        let mut seen = app.started_tenants.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&tenant.record.name) == Some(&script.updated_at) {
            return;
        }
        seen.insert(tenant.record.name.clone(), script.updated_at.clone());
    }
    run_startup(app, tenant).await;
}

/// Makes sure this node has the tenant's packages installed (from the stored lock, on the first
/// load of a new lock) and a resolver for them. A failure is logged; `require` then fails.
pub async fn ensure_packages(app: &AppState, tenant: &Arc<Tenant>) -> Option<Arc<crate::packages::Resolver>> {
    let p = tenant.packages.as_ref().filter(|p| !p.lock_hash.is_empty())?;
    if let Some(r) = app.resolvers.lock().unwrap_or_else(|e| e.into_inner()).get(&p.lock_hash) {
        return Some(r.clone());
    }
    let _one_at_a_time = app.installing.lock().await;
    if let Some(r) = app.resolvers.lock().unwrap_or_else(|e| e.into_inner()).get(&p.lock_hash) {
        return Some(r.clone());
    }
    match crate::packages::ensure_installed(&app.packages_root, p, crate::packages::Limits::of(&tenant.record.settings)).await {
        Ok(dir) => {
            let r = Arc::new(crate::packages::Resolver::new(dir));
            app.resolvers.lock().unwrap_or_else(|e| e.into_inner()).insert(p.lock_hash.clone(), r.clone());
            Some(r)
        }
        Err(e) => {
            tracing::error!(tenant.name = %tenant.record.name, error.cause = %e, "Installing the tenant's packages failed");
            app.logs.write(&tenant.record.name, LogLevel::Error, "/package.json", &format!("Installing the packages failed: {e}"));
            None
        }
    }
}

/// The limits of a tenant's scripts, from its settings, each clamped to the platform's ceiling.
pub fn limits(tenant: &Tenant, max: &crate::config::TenantMaxima) -> ScriptLimits {
    let s = &tenant.record.settings;
    ScriptLimits {
        cpu_ms: s.script_cpu_ms.min(max.script_cpu_ms),
        // Callbacks may run a little past the response; the request timeout bounds the response.
        wall_ms: s.request_timeout_ms.min(max.request_timeout_ms).max(1_000) * 2,
        memory_mb: s.script_memory_mb.min(max.script_memory_mb),
        max_concurrent: s.script_max_concurrent.min(max.script_max_concurrent) as usize,
    }
}

/// The current HTTP request's table operation, which `request.execute()` performs.
pub struct TableCall {
    /// The table.
    pub table: Arc<Table>,
    /// The URL id, for reads by id, updates and deletes.
    pub url_id: Option<Value>,
    /// The `If-Match` version of an update or delete.
    pub if_match: Option<Vec<u8>>,
    /// An undelete request (runs the update script).
    pub undelete: bool,
}

/// The caller of a custom API and the API's permissions (`api/<name>.json`), which decide its
/// routes (§5.2).
pub struct ApiCall {
    /// Who called.
    pub caller: crate::auth::Caller,
    /// The API's `permissions` member.
    pub permissions: Json,
}

/// What an invocation was started for, beyond its tenant.
#[derive(Default)]
pub enum Purpose {
    /// A table script: the request's own operation.
    Table(TableCall),
    /// A custom API.
    Api(ApiCall),
    /// A job or the startup extension.
    #[default]
    Background,
}

/// A script host for one invocation.
#[derive(Clone)]
pub struct Host(Arc<HostInner>);

struct HostInner {
    app: AppState,
    tenant: Arc<Tenant>,
    purpose: Purpose,
    /// The statements of the invocation's host calls are interrupted at its wall-clock limit.
    deadline: std::time::Instant,
}

impl Host {
    /// A host for a tenant's invocation.
    pub fn new(app: AppState, tenant: Arc<Tenant>, purpose: Purpose) -> Self {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(limits(&tenant, &app.maxima_for(&tenant.record)).wall_ms);
        Self(Arc::new(HostInner { app, tenant, purpose, deadline }))
    }
}

impl From<ApiError> for HostError {
    fn from(e: ApiError) -> Self {
        let (status, body) = e.status_and_body();
        HostError::with_body(status, body)
    }
}

/// `__version` (base64) of an item, as an If-Match tag.
fn item_version(item: &Json) -> Option<Vec<u8>> {
    item.get("__version").and_then(Json::as_str).map(wire::version_tag)
}

impl HostInner {
    fn table(&self, name: &str) -> Result<Arc<Table>, HostError> {
        Ok(self.tenant.table(name).ok_or_else(|| ApiError::NotFound(format!("Table '{name}' does not exist.")))?)
    }

    async fn dispatch(&self, call: HostCall) -> Result<Json, HostError> {
        match call {
            HostCall::Execute(args) => self.execute(args).await,
            HostCall::TableRead(a) => {
                let table = self.table(&a.table)?;
                let q = read_query(&table, &a.query, &a.system_properties, a.include_deleted, None)?;
                self.read(&table, q).await
            }
            HostCall::TableLookup(a) => {
                let table = self.table(&a.table)?;
                let id = item::script_id(&table, &a.id)?;
                let q = ReadQuery {
                    system: item::script_system_properties(a.system_properties.iter().map(String::as_str)),
                    top: Some(2),
                    id: Some(id),
                    ..ReadQuery::default()
                };
                Ok(wire::row_for_script(TableService::new(&self.tenant, &table).lookup(&q).await?))
            }
            HostCall::TableInsert(a) => {
                let table = self.table(&a.table)?;
                self.insert(&table, a.item, &a.system_properties).await
            }
            HostCall::TableUpdate(a) => {
                let table = self.table(&a.table)?;
                let id = item::script_id(&table, a.item.get("id").unwrap_or(&Json::Null))?;
                let tag = item_version(&a.item);
                self.update(&table, id, a.item, tag, &a.system_properties, false).await
            }
            HostCall::TableDelete(a) => {
                let table = self.table(&a.table)?;
                let id = item::script_id(&table, &a.id)?;
                let tag = a.version.as_deref().map(wire::version_tag);
                TableService::new(&self.tenant, &table).delete(&id, tag.as_deref()).await?;
                Ok(Json::Null)
            }
            HostCall::SqlQuery(batch) => self.mssql(false, batch).await,
            HostCall::SqlQueryRaw(batch) => self.mssql(true, batch).await,
            HostCall::HttpRequest(req) => crate::outbound::request(&self.tenant, req).await,
            HostCall::PasswordHash(a) => {
                let hash = crate::passwords::hash_for_tenant(&self.tenant.record.name, a.password).await.map_err(|m| HostError::new(400, m))?;
                Ok(Json::String(hash))
            }
            HostCall::PushSend(a) => crate::push::send::send(&self.app, &self.tenant.record.name, a).await,
            HostCall::PushRegistrations(a) => crate::push::scripts::registrations(&self.app, &self.tenant, a.action).await.map_err(HostError::from),
            HostCall::PasswordVerify(a) => {
                let ok = crate::passwords::verify_for_tenant(&self.tenant.record.name, a.password, a.hash).await.map_err(|m| HostError::new(400, m))?;
                Ok(Json::Bool(ok))
            }
        }
    }

    /// `mssql.query` / `mssql.queryRaw` (§6.7, R10): one result per statement of the batch.
    async fn mssql(&self, raw: bool, batch: roost_scripts::host::SqlBatch) -> Result<Json, HostError> {
        let params: Vec<Value> = batch.params.iter().map(param_value).collect();
        // The script wrote this SQL: it gets the database's own message, as SQL Server's errors were.
        let sets = roost_storage::tsql::run(&self.tenant, &batch.sql, &params).await.map_err(|e| {
            let m = match e {
                StorageError::BadInput(m) => m,
                StorageError::Sql(sqlx::Error::Database(d)) => d.message().to_string(),
                other => other.to_string(),
            };
            HostError::with_body(400, json!({ "code": 400, "error": format!("Error: {m}") }))
        })?;
        let out: Vec<Json> = sets
            .iter()
            .map(|set| {
                let value = |v: &Value| wire::value_for_script(v.clone(), true);
                if raw {
                    let meta: Vec<Json> = set
                        .columns
                        .iter()
                        .zip(&set.types)
                        .map(|(n, t)| {
                            let ty = match t {
                                Some(roost_odata::sql::ColType::String) => "text",
                                Some(roost_odata::sql::ColType::Number) => "number",
                                Some(roost_odata::sql::ColType::Integer) => "number",
                                Some(roost_odata::sql::ColType::Boolean) => "boolean",
                                Some(roost_odata::sql::ColType::Date) => "date",
                                Some(roost_odata::sql::ColType::Binary) => "binary",
                                None => "",
                            };
                            json!({ "name": n, "size": 0, "nullable": true, "type": ty })
                        })
                        .collect();
                    let rows: Vec<Json> = set.rows.iter().map(|r| Json::Array(r.iter().map(value).collect())).collect();
                    json!({ "meta": meta, "rows": rows, "affected": set.affected })
                } else {
                    let rows: Vec<Json> = set.rows.iter().map(|r| Json::Object(set.columns.iter().cloned().zip(r.iter().map(value)).collect())).collect();
                    json!({ "rows": rows, "affected": set.affected })
                }
            })
            .collect();
        Ok(Json::Array(out))
    }

    /// `request.execute()`: the HTTP request's own operation, with HTTP's validation.
    async fn execute(&self, args: roost_scripts::host::Execute) -> Result<Json, HostError> {
        let Purpose::Table(call) = &self.purpose else { return Err(HostError::new(500, "execute outside a table script")) };
        let table = call.table.clone();
        match args.operation {
            ExecuteOp::Read => {
                let id = Some(&args.id).filter(|v| !v.is_null()).map(|id| item::script_id(&table, id)).transpose()?;
                let q = read_query(&table, &args.query, &args.system_properties, args.include_deleted, id)?;
                self.read(&table, q).await
            }
            ExecuteOp::Insert => self.insert(&table, args.item, &args.system_properties).await,
            ExecuteOp::Update => {
                let tag = item_version(&args.item).or_else(|| call.if_match.clone());
                let id = call.url_id.clone().ok_or_else(|| ApiError::BadInput(crate::error::msg::ID_REQUIRED.into()))?;
                self.update(&table, id, args.item, tag, &args.system_properties, call.undelete).await
            }
            ExecuteOp::Del => {
                let id = call.url_id.clone().ok_or_else(ApiError::not_found)?;
                let tag = args.version.as_deref().map(wire::version_tag).or_else(|| call.if_match.clone());
                TableService::new(&self.tenant, &table).delete(&id, tag.as_deref()).await?;
                Ok(Json::Null)
            }
        }
    }

    async fn read(&self, table: &Table, q: ReadQuery) -> Result<Json, HostError> {
        let page = TableService::new(&self.tenant, table).read(&q).await?;
        let results: Vec<Json> = page.rows.into_iter().map(wire::row_for_script).collect();
        Ok(json!({ "results": results, "count": page.count }))
    }

    async fn insert(&self, table: &Table, item: Json, system: &[String]) -> Result<Json, HostError> {
        let converted = item::convert(Some(item), table, None, false)?;
        let saved = TableService::new(&self.tenant, table).insert(converted.item, script_system(system)).await?;
        Ok(saved.for_script())
    }

    async fn update(&self, table: &Table, id: Value, mut item: Json, tag: Option<Vec<u8>>, system: &[String], undelete: bool) -> Result<Json, HostError> {
        let svc = TableService::new(&self.tenant, table);
        let saved = if undelete {
            svc.undelete(&id, tag.as_deref(), script_system(system)).await?
        } else {
            if let Json::Object(o) = &mut item {
                o.remove("__version");
            }
            let converted = item::convert(Some(item), table, Some(&id), false)?;
            svc.update(&id, converted.item, tag.as_deref(), script_system(system)).await?
        };
        Ok(saved.for_script())
    }
}

fn script_system(names: &[String]) -> roost_storage::items::SystemProps {
    item::script_system_properties(names.iter().map(String::as_str))
}

/// A script's query as the service's read: filters joined with `and`, the ordering, the columns.
fn read_query(table: &Table, q: &roost_scripts::host::QueryArgs, system: &[String], include_deleted: bool, id: Option<Value>) -> Result<ReadQuery, HostError> {
    let invalid = |e: roost_odata::ParseError| HostError::from(ApiError::BadInput(format!("Invalid query specified. Error: {e}")));
    let filters: Vec<String> = q.filters.iter().map(|f| format!("({f})")).collect();
    let filter = if filters.is_empty() { None } else { Some(roost_odata::parse_filter(&filters.join(" and ")).map_err(invalid)?) };
    let ordering: Vec<String> = q.ordering.iter().map(|(e, asc)| format!("{e} {}", if *asc { "asc" } else { "desc" })).collect();
    let orderby = if ordering.is_empty() { Vec::new() } else { roost_odata::parse_orderby(&ordering.join(",")).map_err(invalid)? };
    let _ = table;
    Ok(ReadQuery {
        filter,
        orderby,
        select: if q.selections.is_empty() { None } else { Some(q.selections.clone()) },
        system: script_system(system),
        include_deleted,
        // `tables.*` reads have no default `$top` (§6.6); a read by id asks for two rows, so that a
        // script that finds more than one is told so.
        top: if id.is_some() { Some(q.take.unwrap_or(1).max(2)) } else { q.take },
        skip: q.skip.unwrap_or(0),
        id,
        count: q.include_total_count,
    })
}

/// A script's SQL parameter: `{"$date"}` and `{"$bytes"}` carry dates and buffers.
fn param_value(v: &Json) -> Value {
    use base64::Engine as _;
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Number(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(o) => {
            if let Some(d) = o.get("$date").and_then(Json::as_str).and_then(roost_odata::parse_strict_datetime) {
                Value::Date(d)
            } else if let Some(b) = o.get("$bytes").and_then(Json::as_str) {
                Value::Bytes(base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default())
            } else {
                Value::Text(v.to_string())
            }
        }
        Json::Array(_) => Value::Text(v.to_string()),
    }
}

impl ScriptHost for Host {
    fn finished(&self, cpu: std::time::Duration, outcome: Result<(), &roost_scripts::ScriptFailure>) {
        if let Some(m) = self.0.app.metrics.tenant(&self.0.tenant.record.name) {
            m.script(cpu, outcome.err());
        }
    }

    fn call(&self, call: HostCall) -> BoxFuture<'static, Result<Json, HostError>> {
        let this = self.0.clone();
        Box::pin(async move { roost_storage::deadline::scope(this.deadline, this.dispatch(call)).await })
    }

    fn api_allowed(&self, route: &str, verb: &str) -> bool {
        match &self.0.purpose {
            Purpose::Api(api) => api.caller.allows(crate::auth::api_permission(&api.permissions, route, verb), false),
            _ => false,
        }
    }

    fn mint_token(&self, user_id: &str, claims: &str, lifetime_seconds: f64) -> Result<String, String> {
        if user_id.is_empty() || user_id.chars().count() > MAX_TOKEN_USER_ID_CHARS {
            return Err(format!("createToken: the user id must have 1 to {MAX_TOKEN_USER_ID_CHARS} characters."));
        }
        if claims.len() > MAX_TOKEN_CLAIMS_BYTES {
            return Err(format!("createToken: the extra claims take more than {MAX_TOKEN_CLAIMS_BYTES} bytes as JSON."));
        }
        let Ok(Json::Object(extra)) = serde_json::from_str::<Json>(claims) else { return Err("createToken: options.claims must be an object.".into()) };
        if let Some(k) = extra.keys().find(|k| crate::auth::RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(format!("createToken: the claim '{k}' is set by Roost and cannot be given."));
        }
        if !lifetime_seconds.is_finite() || !(1.0..=MAX_TOKEN_LIFETIME_SECONDS as f64).contains(&lifetime_seconds) {
            return Err(format!("createToken: options.lifetimeSeconds must be between 1 and {MAX_TOKEN_LIFETIME_SECONDS}."));
        }
        Ok(crate::auth::mint_token_with(self.0.tenant.token_key(), user_id, lifetime_seconds as i64, &extra))
    }

    fn module(&self, name: &str) -> Option<Arc<str>> {
        self.0.tenant.script(ScriptKind::Shared, name).map(|s| s.body.clone())
    }

    fn resolve(&self, from: &str, id: &str) -> roost_scripts::Resolved {
        let Some(p) = self.0.tenant.packages.as_ref().filter(|p| !p.lock_hash.is_empty()) else { return roost_scripts::Resolved::NotFound };
        let resolver = self.0.app.resolvers.lock().unwrap_or_else(|e| e.into_inner()).get(&p.lock_hash).cloned();
        match resolver {
            Some(r) => r.resolve(from, id),
            None => roost_scripts::Resolved::NotFound,
        }
    }

    fn log(&self, level: LogLevel, source: &str, message: &str) {
        self.0.app.logs.write(&self.0.tenant.record.name, level, source, message);
    }

    fn config(&self) -> Json {
        let t = &self.0.tenant.record;
        let whitelist: Vec<Json> = t.settings.cors_origins.iter().map(|h| json!({ "host": h })).collect();
        // `process.env`: the app settings, then the service's own settings of §6.13 under their
        // Mobile Services names (an app setting cannot stand in for them).
        let mut env = serde_json::Map::new();
        for (k, v) in &t.settings.app_settings {
            env.insert(k.clone(), json!(v));
        }
        for (k, v) in [
            ("MS_MobileServiceName", t.name.clone()),
            ("MS_ApplicationKey", t.application_key.clone()),
            ("MS_MasterKey", t.master_key.clone()),
            ("MS_DynamicSchemaEnabled", t.settings.dynamic_schema.to_string()),
            ("MS_CrossDomainWhitelist", Json::Array(whitelist.clone()).to_string()),
            ("MS_MaxRequestBodySizeKB", t.settings.max_body_kb.to_string()),
            ("MS_RequireHttps", t.settings.require_https.to_string()),
        ] {
            env.insert(k.into(), json!(v));
        }
        json!({
            "env": env,
            "config": {
                "appSettings": t.settings.app_settings,
                "applicationKey": t.application_key,
                "masterKey": t.master_key,
                "dynamicSchemaEnabled": t.settings.dynamic_schema,
                "crossDomainWhitelist": whitelist,
                "serviceName": t.name,
            }
        })
    }
}

/// The longest user id `createToken` signs.
const MAX_TOKEN_USER_ID_CHARS: usize = 256;
/// The most extra claims `createToken` signs, as JSON.
const MAX_TOKEN_CLAIMS_BYTES: usize = 4096;
/// The longest lifetime `createToken` gives a token (a year).
const MAX_TOKEN_LIFETIME_SECONDS: i64 = 365 * 24 * 3600;

/// Runs an invocation for an HTTP request and waits for its response. A script that ends without
/// responding leaves the request to the pipeline's timeout (503, §6.4).
pub async fn respond(app: &AppState, tenant: &Arc<Tenant>, invocation: roost_scripts::Invocation, host: Host) -> Result<ScriptResponse, ApiError> {
    let handle = app.scripts.invoke(&tenant.record.name, limits(tenant, &app.maxima_for(&tenant.record)), invocation, Arc::new(host));
    match handle.response.await {
        Ok(Ok(Some(r))) => Ok(r),
        Ok(Ok(None)) | Err(_) => std::future::pending().await,
        Ok(Err(ScriptFailure::WallLimit(_))) => Err(ApiError::Timeout),
        Ok(Err(ScriptFailure::Busy)) => Err(ApiError::Timeout),
        Ok(Err(e)) => Err(ApiError::Internal(format!("script failed: {e}"))),
    }
}

/// A script's response as HTTP: its status, its body with the body's default content type, then the
/// headers the script set (which win).
pub fn into_http(resp: ScriptResponse) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse as _;
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, bytes) = match resp.body {
        ScriptBody::Empty => (None, Vec::new()),
        ScriptBody::Json(j) => (Some("application/json"), j.to_string().into_bytes()),
        ScriptBody::Text(t) => (Some("text/plain"), t.into_bytes()),
        ScriptBody::Bytes(b) => (Some("application/octet-stream"), b),
    };
    let mut out = (status, bytes).into_response();
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            out.headers_mut().insert(k, v);
        }
    }
    out
}
