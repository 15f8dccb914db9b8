//! The server side of scripts: `impl ScriptHost` (tables, the request's default operation, outbound
//! HTTP, shared modules, logs), running an invocation for an HTTP request, and the log writer.
//!
//! Host calls reuse the table handlers' conversions (`http/tables.rs`), so a script's `execute()`
//! validates and stores exactly as the plain HTTP request would; `tables` calls skip permissions,
//! scripts and the `$top` default (§6.6).

use crate::error::ApiError;
use crate::http::tables::{self, convert_item, row_values_for_script, url_id_of};
use crate::AppState;
use futures::future::BoxFuture;
use roost_api::IdKind;
use roost_odata::sql::Value;
use roost_scripts::{LogLevel, ScriptBody, ScriptFailure, ScriptHost, ScriptLimits, ScriptResponse};
use roost_storage::items::{Query, SystemProps};
use roost_storage::scripts::ScriptKind;
use roost_storage::{StorageError, Table, Tenant};
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Writes script log lines to the catalog in the background, in order.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<LogMsg>,
}

/// Log lines kept per tenant (older ones are deleted).
pub const KEEP_LOG_LINES: i64 = 10_000;
/// Lines written between two retention passes.
const PRUNE_EVERY: usize = 1_000;

/// (level, source, message) of a log line.
type LogLine = (String, String, String);

enum LogMsg {
    Line(String, String, String, String),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl LogSink {
    /// Starts the writer task.
    pub fn start(app: std::sync::Weak<crate::App>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogMsg>();
        tokio::spawn(async move {
            let mut written = 0usize;
            while let Some(first) = rx.recv().await {
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
                        if let Err(e) = app.storage.prune_logs(&tenant, KEEP_LOG_LINES).await {
                            tracing::warn!(tenant.name = %tenant, error = %e, "Could not prune script logs");
                        }
                    }
                }
                for f in flushes {
                    let _ = f.send(());
                }
            }
        });
        Self { tx }
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
    let handle = app.scripts.invoke(&tenant.record.name, limits(tenant, &app.maxima), invocation, Arc::new(Host::new(app.clone(), tenant.clone(), None)));
    // A script that ended without calling `done` can no longer call it: like the original, wait out
    // the 5 s and say so.
    let waited = tokio::time::timeout(STARTUP_WAIT, async {
        match handle.response.await {
            Ok(Ok(None)) | Err(_) => std::future::pending().await,
            other => other,
        }
    });
    let outcome = match waited.await {
        Ok(Ok(Ok(Some(r)))) if r.status < 400 => "succeeded".to_string(),
        Ok(Ok(Ok(Some(_)))) => "failed: done(error)".to_string(),
        // Mapped to `pending` above: only a timeout ends the wait without a response.
        Ok(Ok(Ok(None))) | Ok(Err(_)) => "failed: the script runtime went away".to_string(),
        Ok(Ok(Err(e))) => format!("failed: {e}"),
        Err(_) => {
            app.logs.write(&tenant.record.name, LogLevel::Error, &script.source(), "'startup' of 'startup.js' failed to call 'done' method with in 5000 ms");
            "failed: done was not called within 5000 ms".to_string()
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

/// A script host for one invocation.
#[derive(Clone)]
pub struct Host(Arc<HostInner>);

struct HostInner {
    app: AppState,
    tenant: Arc<Tenant>,
    call: Option<TableCall>,
    /// The statements of the invocation's host calls are interrupted at its wall-clock limit.
    deadline: std::time::Instant,
}

impl Host {
    /// A host for a tenant's invocation (with the request's table operation for table scripts).
    pub fn new(app: AppState, tenant: Arc<Tenant>, call: Option<TableCall>) -> Self {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(limits(&tenant, &app.maxima).wall_ms);
        Self(Arc::new(HostInner { app, tenant, call, deadline }))
    }
}

/// The `{status, body}` a script sees for a failed host call.
fn script_error(e: ApiError) -> Json {
    let (status, body) = e.status_and_body();
    json!({ "status": status, "body": body })
}

fn storage_error(e: StorageError) -> Json {
    script_error(e.into())
}

fn system_props(list: Option<&Json>) -> SystemProps {
    let mut p = SystemProps::default();
    for v in list.and_then(Json::as_array).into_iter().flatten() {
        match v.as_str().unwrap_or("").to_ascii_lowercase().trim_start_matches("__") {
            "*" => p = SystemProps::ALL,
            "createdat" => p.created_at = true,
            "updatedat" => p.updated_at = true,
            "version" => p.version = true,
            "deleted" => p.deleted = true,
            _ => {}
        }
    }
    p
}

/// A JSON id from a script as a storage value for the table's id kind.
fn id_value(table: &Table, id: &Json) -> Result<Value, Json> {
    let bad = || script_error(ApiError::BadInput(format!("Operation on table '{}' failed. The id argument is invalid.", table.record.name)));
    match (table.record.id_kind, id) {
        (IdKind::Integer, Json::Number(n)) => n.as_f64().filter(|f| f.fract() == 0.0).map(|f| Value::Int(f as i64)).ok_or_else(bad),
        (IdKind::Integer, Json::String(s)) => s.trim().parse::<i64>().map(Value::Int).map_err(|_| bad()),
        (IdKind::String, Json::String(s)) => url_id_of(table, s).map_err(script_error),
        (IdKind::String, Json::Number(n)) => Ok(Value::Text(n.to_string())),
        _ => Err(bad()),
    }
}

/// `__version` (base64) of an item, as an If-Match tag.
fn version_tag(v: Option<&Json>) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let s = v?.as_str()?;
    Some(base64::engine::general_purpose::STANDARD.decode(s).ok().filter(|b| b.len() == 8).unwrap_or_else(|| vec![0xFF; 9]))
}

impl HostInner {
    fn table(&self, args: &Json) -> Result<Arc<Table>, Json> {
        let name = args.get("table").and_then(Json::as_str).unwrap_or("");
        self.tenant.table(name).ok_or_else(|| script_error(ApiError::NotFound(format!("Table '{name}' does not exist."))))
    }

    async fn dispatch(&self, op: &str, args: Json) -> Result<Json, Json> {
        match op {
            "execute" => self.execute(args).await,
            "table.read" => {
                let table = self.table(&args)?;
                self.read(&table, &args, args.get("id").filter(|v| !v.is_null())).await
            }
            "table.lookup" => {
                let table = self.table(&args)?;
                let id = args.get("id").cloned().unwrap_or(Json::Null);
                let mut a = args.clone();
                a["take"] = json!(1);
                let r = self.read(&table, &a, Some(&id)).await?;
                let row = r.get("results").and_then(Json::as_array).and_then(|a| a.first()).cloned();
                let shown = match &id {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                row.ok_or_else(|| script_error(ApiError::item_not_found(&shown)))
            }
            "table.insert" => {
                let table = self.table(&args)?;
                self.insert(&table, &args).await
            }
            "table.update" => {
                let table = self.table(&args)?;
                let item = args.get("item").cloned().unwrap_or(Json::Null);
                let id = id_value(&table, item.get("id").unwrap_or(&Json::Null))?;
                let tag = version_tag(item.get("__version"));
                self.update(&table, id, item, tag, &args, false).await
            }
            "table.del" => {
                let table = self.table(&args)?;
                let id = id_value(&table, args.get("id").unwrap_or(&Json::Null))?;
                let tag = version_tag(args.get("version"));
                self.delete(&table, id, tag).await
            }
            "mssql.query" | "mssql.queryRaw" => self.mssql(op == "mssql.queryRaw", &args).await,
            "http.request" => crate::outbound::request(&self.tenant, args).await,
            other => Err(script_error(ApiError::Internal(format!("unknown host call {other}")))),
        }
    }

    /// `mssql.query` / `mssql.queryRaw` (§6.7, R10): one result per statement of the batch.
    async fn mssql(&self, raw: bool, args: &Json) -> Result<Json, Json> {
        let sql = args.get("sql").and_then(Json::as_str).unwrap_or("");
        let params: Vec<Value> = args.get("params").and_then(Json::as_array).into_iter().flatten().map(param_value).collect();
        // The script wrote this SQL: it gets the database's own message, as SQL Server's errors were.
        let sets = roost_storage::tsql::run(&self.tenant, sql, &params).await.map_err(|e| {
            let m = match e {
                StorageError::BadInput(m) => m,
                StorageError::Sql(sqlx::Error::Database(d)) => d.message().to_string(),
                other => other.to_string(),
            };
            json!({ "status": 400, "body": { "code": 400, "error": format!("Error: {m}") } })
        })?;
        let out: Vec<Json> = sets
            .iter()
            .map(|set| {
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
                    let rows: Vec<Json> = set.rows.iter().map(|r| Json::Array(r.iter().cloned().map(value_for_script).collect())).collect();
                    json!({ "meta": meta, "rows": rows, "affected": set.affected })
                } else {
                    let rows: Vec<Json> = set
                        .rows
                        .iter()
                        .map(|r| Json::Object(set.columns.iter().cloned().zip(r.iter().cloned().map(value_for_script)).collect()))
                        .collect();
                    json!({ "rows": rows, "affected": set.affected })
                }
            })
            .collect();
        Ok(Json::Array(out))
    }

    /// `request.execute()`: the HTTP request's own operation, with HTTP's validation.
    async fn execute(&self, args: Json) -> Result<Json, Json> {
        let call = self.call.as_ref().ok_or_else(|| script_error(ApiError::Internal("execute outside a table script".into())))?;
        let table = call.table.clone();
        match args.get("operation").and_then(Json::as_str).unwrap_or("") {
            "read" => self.read(&table, &args, args.get("id").filter(|v| !v.is_null())).await,
            "insert" => self.insert(&table, &args).await,
            "update" => {
                let mut item = args.get("item").cloned().unwrap_or(Json::Null);
                let tag = version_tag(item.get("__version")).or_else(|| call.if_match.clone());
                if let Json::Object(o) = &mut item {
                    o.remove("__version");
                }
                let id = call.url_id.clone().ok_or_else(|| script_error(ApiError::BadInput(crate::error::msg::ID_REQUIRED.into())))?;
                self.update(&table, id, item, tag, &args, call.undelete).await
            }
            "del" => {
                let id = call.url_id.clone().ok_or_else(|| script_error(ApiError::not_found()))?;
                let tag = version_tag(args.get("version")).or_else(|| call.if_match.clone());
                self.delete(&table, id, tag).await
            }
            other => Err(script_error(ApiError::Internal(format!("unknown operation {other}")))),
        }
    }

    async fn read(&self, table: &Table, args: &Json, id: Option<&Json>) -> Result<Json, Json> {
        let q = args.get("query").unwrap_or(args);
        let filters: Vec<String> = q.get("filters").and_then(Json::as_array).into_iter().flatten().filter_map(|f| f.as_str().map(|s| format!("({s})"))).collect();
        let invalid = |e: roost_odata::ParseError| script_error(ApiError::BadInput(format!("Invalid query specified. Error: {e}")));
        let filter = if filters.is_empty() { None } else { Some(roost_odata::parse_filter(&filters.join(" and ")).map_err(invalid)?) };
        let ordering: Vec<String> = q
            .get("ordering")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| Some(format!("{} {}", o.get(0)?.as_str()?, if o.get(1)?.as_bool()? { "asc" } else { "desc" })))
            .collect();
        let orderby = if ordering.is_empty() { Vec::new() } else { roost_odata::parse_orderby(&ordering.join(",")).map_err(invalid)? };
        let select: Vec<String> = q.get("selections").and_then(Json::as_array).into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect();
        let id = id.map(|id| id_value(table, id)).transpose()?;
        let system = if table.record.id_kind == IdKind::String { system_props(args.get("systemProperties")) } else { SystemProps::default() };
        let top = q.get("take").and_then(Json::as_u64);
        let query = Query {
            filter: filter.as_ref(),
            orderby: &orderby,
            select: if select.is_empty() { None } else { Some(&select) },
            system,
            include_deleted: args.get("includeDeleted").and_then(Json::as_bool).unwrap_or(false),
            top: if id.is_some() { Some(top.unwrap_or(1).max(2)) } else { top },
            skip: q.get("skip").and_then(Json::as_u64).unwrap_or(0),
            id,
            count: q.get("includeTotalCount").and_then(Json::as_bool).unwrap_or(false),
        };
        let (rows, count) = match self.tenant.query(table, &query).await {
            Ok(x) => x,
            // As over HTTP (§2.3): under dynamic schema a column nobody has written yet matches nothing.
            Err(StorageError::UnknownColumn(_)) if self.tenant.record.settings.dynamic_schema => (Vec::new(), if query.count { Some(0) } else { None }),
            Err(e) => return Err(storage_error(e)),
        };
        let results: Vec<Json> = rows.into_iter().map(row_values_for_script).collect();
        Ok(json!({ "results": results, "count": count }))
    }

    async fn insert(&self, table: &Table, args: &Json) -> Result<Json, Json> {
        let item = args.get("item").cloned();
        let (item, _) = convert_item(item, table, None).map_err(script_error)?;
        let written = self.tenant.insert(table, item).await.map_err(|e| script_error(e.into()))?;
        let system = tables::system_for(table, system_props(args.get("systemProperties")));
        let mut out = Map::new();
        out.insert("id".into(), tables::value_to_json(written.id.clone()));
        tables::add_system(&mut out, &written, system, None);
        Ok(dates_for_script(out))
    }

    async fn update(&self, table: &Table, id: Value, mut item: Json, tag: Option<Vec<u8>>, args: &Json, undelete: bool) -> Result<Json, Json> {
        if let Json::Object(o) = &mut item {
            o.remove("__version");
        }
        let tag = if table.record.id_kind == IdKind::String { tag } else { None };
        let (fields, _) = if undelete { (Vec::new(), Map::new()) } else { convert_item(Some(item), table, Some(&id)).map_err(script_error)? };
        let written = self.tenant.update(table, &id, fields, tag.as_deref(), undelete).await.map_err(|e| script_error(e.into()))?;
        let mut system = tables::system_for(table, system_props(args.get("systemProperties")));
        system.version |= tag.is_some() && table.record.id_kind == IdKind::String;
        let extra = if system.created_at || system.deleted { self.tenant.read_full(table, &id).await.map_err(storage_error)? } else { None };
        let mut out = Map::new();
        out.insert("id".into(), tables::value_to_json(id));
        if undelete {
            out.insert("__deleted".into(), Json::Bool(false));
        }
        tables::add_system(&mut out, &written, system, extra.as_ref());
        Ok(dates_for_script(out))
    }

    async fn delete(&self, table: &Table, id: Value, tag: Option<Vec<u8>>) -> Result<Json, Json> {
        let tag = if table.record.id_kind == IdKind::String { tag } else { None };
        let shown = match &id {
            Value::Text(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => String::new(),
        };
        self.tenant.delete(table, &id, tag.as_deref()).await.map_err(|e| {
            let e: ApiError = e.into();
            script_error(match e {
                ApiError::NotFound(m) if m == crate::error::msg::NOT_FOUND => ApiError::item_not_found(&shown),
                other => other,
            })
        })?;
        Ok(Json::Null)
    }
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

/// A stored value as a script sees it: dates as `{"$date"}`, binary as `{"$bytes"}`.
fn value_for_script(v: Value) -> Json {
    use base64::Engine as _;
    match v {
        Value::Date(d) => json!({ "$date": roost_odata::format_datetime(&d) }),
        Value::Bytes(b) => json!({ "$bytes": base64::engine::general_purpose::STANDARD.encode(b) }),
        other => tables::value_to_json(other),
    }
}

/// System dates of a write as `{"$date": …}`, so the script sees `Date` objects.
fn dates_for_script(mut out: Map<String, Json>) -> Json {
    for k in ["__createdAt", "__updatedAt"] {
        if let Some(Json::String(s)) = out.get(k).cloned() {
            out.insert(k.into(), json!({ "$date": s }));
        }
    }
    Json::Object(out)
}

impl ScriptHost for Host {
    fn call(&self, op: &str, args: Json) -> BoxFuture<'static, Result<Json, Json>> {
        let this = self.0.clone();
        let op = op.to_string();
        Box::pin(async move { roost_storage::deadline::scope(this.deadline, this.dispatch(&op, args)).await })
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
        json!({
            "env": t.settings.app_settings,
            "config": {
                "appSettings": t.settings.app_settings,
                "applicationKey": t.application_key,
                "masterKey": t.master_key,
                "dynamicSchemaEnabled": t.settings.dynamic_schema,
                "crossDomainWhitelist": t.settings.cors_origins.iter().map(|h| json!({ "host": h })).collect::<Vec<_>>(),
                "serviceName": t.name,
            }
        })
    }
}

/// Runs an invocation for an HTTP request and waits for its response. A script that ends without
/// responding leaves the request to the pipeline's timeout (503, §6.4).
pub async fn respond(app: &AppState, tenant: &Arc<Tenant>, invocation: roost_scripts::Invocation, host: Host) -> Result<ScriptResponse, ApiError> {
    let handle = app.scripts.invoke(&tenant.record.name, limits(tenant, &app.maxima), invocation, Arc::new(host));
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
