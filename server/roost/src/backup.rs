//! Per-tenant backup and restore: one self-describing archive (gzip-compressed JSON lines) holding
//! everything a tenant is — its keys, settings and tier, scripts, identity providers, push
//! credentials and registrations, packages, and every table's schema and rows with their system
//! properties — restorable on either backend and under another name.
//!
//! - **Streamed**: rows come from the storage's snapshot through a bounded channel and leave as
//!   compressed chunks of about 64 KiB; a restore reads line by line. Memory stays constant.
//! - **Consistent**: the rows are one snapshot (a read transaction), taken while writes go on.
//! - **Secrets**: sealed values are opened with this platform's `identity_key` and written in the
//!   clear, then sealed again with the target platform's key (and the target tenant's name) on
//!   restore. An archive is therefore as secret as the tenant's master key: files are written 0600.
//! - **Complete or nothing**: the last line counts what came before; a restore that meets a truncated
//!   or altered archive, or fails on the way, removes the half-restored tenant.

use crate::AppState;
use base64::Engine as _;
use roost_odata::sql::{ColType, Column, Value};
use roost_storage::scripts::ScriptKind;
use roost_storage::snapshot::{self, Snap};
use roost_storage::{TableRecord, Tenant};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::io::Write as _;
use std::sync::Arc;

/// The archive's `format` and its version.
pub const FORMAT: &str = "roost-tenant-backup";
pub const VERSION: u32 = 1;
/// Compressed bytes sent at a time.
const CHUNK: usize = 64 * 1024;
/// Rows written back per statement (fewer for wide tables).
const ROWS_PER_STATEMENT: usize = 200;

/// What a backup holds, as its last line counts it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub tenant: String,
    pub tables: u64,
    pub rows: u64,
    pub scripts: u64,
    pub providers: u64,
    pub registrations: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} tables, {} rows, {} scripts, {} identity providers, {} push registrations",
            self.tenant, self.tables, self.rows, self.scripts, self.providers, self.registrations
        )
    }
}

/// One line of the archive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
        created_at: String,
        roost: String,
        backend: String,
        tenant: String,
    },
    Tenant {
        application_key: String,
        master_key: String,
        settings: Json,
        tier: String,
        token_secret: Option<String>,
    },
    Script {
        kind: String,
        name: String,
        body: String,
        meta: Json,
    },
    Provider {
        name: String,
        kind: String,
        client_id: String,
        secret: Option<String>,
        secret_hint: String,
        config: String,
    },
    Packages {
        manifest: String,
        lock: String,
        lock_hash: String,
    },
    Vapid {
        public: String,
        private: String,
    },
    PushCredential {
        platform: String,
        config: String,
        secret: String,
    },
    Registration(Box<roost_storage::push::RegistrationRecord>),
    Table {
        name: String,
        id_kind: roost_api::IdKind,
        soft_delete: bool,
        permissions: roost_api::TablePermissions,
        columns: Vec<(String, String)>,
    },
    /// One row of the last table: its values in the table's column order.
    R(Vec<Json>),
    End(Summary),
}

fn encode(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Number(n) => json!(n),
        Value::Int(i) => json!(i),
        Value::Text(s) => Json::String(s),
        Value::Date(d) => Json::String(roost_odata::format_datetime(&d)),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

fn decode(v: Json, ty: ColType) -> anyhow::Result<Value> {
    Ok(match (v, ty) {
        (Json::Null, _) => Value::Null,
        (Json::Bool(b), _) => Value::Bool(b),
        (Json::Number(n), ColType::Integer) => Value::Int(n.as_i64().ok_or_else(|| anyhow::anyhow!("an integer id that is not one: {n}"))?),
        (Json::Number(n), _) => Value::Number(n.as_f64().unwrap_or(0.0)),
        (Json::String(s), ColType::Date) => Value::Date(roost_odata::parse_loose_datetime(&s).ok_or_else(|| anyhow::anyhow!("a date that is not one: {s}"))?),
        (Json::String(s), ColType::Binary) => Value::Bytes(base64::engine::general_purpose::STANDARD.decode(s.as_bytes())?),
        (Json::String(s), _) => Value::Text(s),
        (other, _) => anyhow::bail!("a value no column holds: {other}"),
    })
}

/// Gzip-compresses lines and hands out chunks of about [`CHUNK`] bytes.
struct Writer {
    gz: flate2::write::GzEncoder<Vec<u8>>,
    out: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
}

impl Writer {
    async fn line(&mut self, line: &Line) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.gz, line)?;
        self.gz.write_all(b"\n")?;
        if self.gz.get_ref().len() >= CHUNK {
            let chunk = std::mem::take(self.gz.get_mut());
            self.out.send(Ok(chunk.into())).await.map_err(|_| anyhow::anyhow!("the backup's reader went away"))?;
        }
        Ok(())
    }

    async fn finish(self) -> anyhow::Result<()> {
        let rest = self.gz.finish()?;
        self.out.send(Ok(rest.into())).await.map_err(|_| anyhow::anyhow!("the backup's reader went away"))?;
        Ok(())
    }
}

/// Writes the backup of tenant `name` into `out` as compressed chunks. An error is also sent down
/// `out`, so a reader never takes a truncated archive for a whole one.
pub async fn write(app: &AppState, name: &str, out: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) -> anyhow::Result<Summary> {
    let result = write_inner(app, name, out.clone()).await;
    if let Err(e) = &result {
        let _ = out.send(Err(std::io::Error::other(e.to_string()))).await;
    }
    result
}

async fn write_inner(app: &AppState, name: &str, out: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) -> anyhow::Result<Summary> {
    let tenant = app.storage.tenant(name).await?.ok_or_else(|| anyhow::anyhow!("there is no tenant '{name}'"))?;
    let t = &tenant.record.name;
    let mut w = Writer { gz: flate2::write::GzEncoder::new(Vec::with_capacity(CHUNK * 2), flate2::Compression::fast()), out };
    let mut summary = Summary { tenant: t.clone(), ..Summary::default() };
    w.line(&Line::Header {
        format: FORMAT.into(),
        version: VERSION,
        created_at: roost_odata::format_datetime(&chrono::Utc::now()),
        roost: env!("CARGO_PKG_VERSION").into(),
        backend: format!("{:?}", app.storage.dialect()).to_ascii_lowercase(),
        tenant: t.clone(),
    })
    .await?;
    w.line(&Line::Tenant {
        application_key: tenant.record.application_key.clone(),
        master_key: tenant.record.master_key.clone(),
        settings: serde_json::to_value(&tenant.record.settings)?,
        tier: tenant.record.tier.clone(),
        token_secret: tenant.token_secret.clone(),
    })
    .await?;
    for s in app.storage.script_records(t).await? {
        summary.scripts += 1;
        w.line(&Line::Script { kind: s.kind.as_str().into(), name: s.name.clone(), body: s.body.to_string(), meta: s.meta.clone() }).await?;
    }
    for p in app.storage.providers(t).await? {
        let secret = match p.secret_sealed.as_str() {
            "" => None,
            sealed => Some(app.identity_key.open(t, &p.name, sealed).map_err(|e| anyhow::anyhow!("provider {}: {e}", p.name))?.expose_secret().to_string()),
        };
        summary.providers += 1;
        w.line(&Line::Provider { name: p.name, kind: p.kind, client_id: p.client_id, secret, secret_hint: p.secret_hint, config: p.config }).await?;
    }
    if let Some(p) = app.storage.package_record(t).await? {
        w.line(&Line::Packages { manifest: p.manifest, lock: p.lock, lock_hash: p.lock_hash }).await?;
    }
    if let Some(v) = app.storage.vapid(t).await? {
        let private = app.identity_key.open(t, crate::push::VAPID_SEAL, &v.vapid_private).map_err(|e| anyhow::anyhow!("the Web Push key: {e}"))?;
        w.line(&Line::Vapid { public: v.vapid_public, private: private.expose_secret().to_string() }).await?;
    }
    for c in app.storage.platform_credentials(t).await? {
        let seal = if c.platform == "fcm" { crate::push::native::FCM_SEAL } else { crate::push::native::APNS_SEAL };
        let secret = app.identity_key.open(t, seal, &c.secret).map_err(|e| anyhow::anyhow!("the {} credentials: {e}", c.platform))?;
        w.line(&Line::PushCredential { platform: c.platform, config: c.config, secret: secret.expose_secret().to_string() }).await?;
    }
    for r in app.storage.registrations(t, None, None).await? {
        summary.registrations += 1;
        w.line(&Line::Registration(Box::new(r))).await?;
    }
    // The rows: one snapshot, streamed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<roost_storage::Result<Snap>>(256);
    let reader = {
        let (app, tenant) = (app.clone(), tenant.clone());
        tokio::spawn(async move { app.storage.snapshot(&tenant, tx).await })
    };
    while let Some(item) = rx.recv().await {
        match item? {
            Snap::Table(record, columns) => {
                summary.tables += 1;
                w.line(&Line::Table {
                    name: record.name,
                    id_kind: record.id_kind,
                    soft_delete: record.soft_delete,
                    permissions: record.permissions,
                    columns: columns.iter().map(|c| (c.name.clone(), snapshot::type_name(c.ty).to_string())).collect(),
                })
                .await?;
            }
            Snap::Row(values) => {
                summary.rows += 1;
                w.line(&Line::R(values.into_iter().map(encode).collect())).await?;
            }
        }
    }
    reader.await??;
    w.line(&Line::End(summary.clone())).await?;
    w.finish().await?;
    Ok(summary)
}

/// Writes the backup of `name` to the file `path` (mode 0600; written beside it, then renamed, so
/// a crash never leaves a partial archive under the final name).
pub async fn to_file(app: &AppState, name: &str, path: &std::path::Path) -> anyhow::Result<Summary> {
    let partial = path.with_extension("partial");
    let file = {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&partial).map_err(|e| anyhow::anyhow!("creating {}: {e}", partial.display()))?
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut file = std::io::BufWriter::new(file);
        while let Some(chunk) = rx.blocking_recv() {
            let chunk: bytes::Bytes = chunk?;
            file.write_all(&chunk)?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    });
    let summary = write(app, name, tx).await;
    let written = writer.await?;
    match (summary, written) {
        (Ok(s), Ok(())) => {
            std::fs::rename(&partial, path).map_err(|e| anyhow::anyhow!("renaming to {}: {e}", path.display()))?;
            Ok(s)
        }
        (Err(e), _) | (_, Err(e)) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Restores an archive read from `input` (gzip-compressed, as [`write`] made it) as a new tenant:
/// `as_name`, else the name it was backed up under. The tenant must not exist.
pub async fn restore(app: &AppState, input: Box<dyn std::io::Read + Send>, as_name: Option<&str>) -> anyhow::Result<Summary> {
    // Lines are parsed off the async workers and arrive through a bounded channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<Line>>(256);
    let parser = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(input));
        for line in reader.lines() {
            let parsed =
                line.map_err(anyhow::Error::from).and_then(|l| serde_json::from_str::<Line>(&l).map_err(|e| anyhow::anyhow!("not a Roost backup line: {e}")));
            let stop = parsed.is_err();
            if tx.blocking_send(parsed).is_err() || stop {
                return;
            }
        }
    });
    let header = match rx.recv().await {
        Some(Ok(Line::Header { format, version, tenant, .. })) if format == FORMAT => {
            anyhow::ensure!(version <= VERSION, "the archive is of version {version}; this Roost reads up to {VERSION}: upgrade it first");
            tenant
        }
        Some(Err(e)) => return Err(e.context("reading the archive")),
        _ => anyhow::bail!("this is not a Roost tenant backup (its first line is no {FORMAT} header)"),
    };
    let name = as_name.unwrap_or(&header).to_ascii_lowercase();
    let (tier, token_secret) = match rx.recv().await {
        Some(Ok(Line::Tenant { application_key, master_key, settings, tier, token_secret })) => {
            let settings: roost_api::TenantSettings = serde_json::from_value(settings)?;
            app.storage.create_tenant(&name, &application_key, &master_key, &settings).await.map_err(|e| anyhow::anyhow!("creating tenant '{name}': {e}"))?;
            (tier, token_secret)
        }
        Some(Err(e)) => return Err(e),
        _ => anyhow::bail!("the archive's second line is not its tenant"),
    };
    // From here on, a failure removes the tenant this restore created.
    let result = async {
        if !tier.is_empty() {
            app.storage.set_tier(&name, &tier).await?;
        }
        if let Some(s) = token_secret {
            app.storage.set_token_secret(&name, Some(&s)).await?;
        }
        restore_rest(app, &name, &mut rx).await
    }
    .await;
    drop(rx);
    let _ = parser.await;
    match result {
        Ok(s) => {
            app.storage.announce_change().await?;
            Ok(s)
        }
        Err(e) => {
            // Nothing half-restored stays behind.
            if let Err(d) = crate::manage::delete_tenant(&app.storage, &name).await {
                tracing::warn!(tenant.name = %name, error.cause = %d, "Could not remove a half-restored tenant");
            }
            Err(e.context(format!("restoring '{name}' failed; nothing of it was kept")))
        }
    }
}

async fn restore_rest(app: &AppState, name: &str, rx: &mut tokio::sync::mpsc::Receiver<anyhow::Result<Line>>) -> anyhow::Result<Summary> {
    let mut got = Summary { tenant: name.to_string(), ..Summary::default() };
    // The table being restored, its columns and a batch of rows.
    type Current = Option<(Arc<Tenant>, Arc<roost_storage::Table>, Vec<Column>, Vec<Vec<Value>>)>;
    let mut current: Current = None;
    async fn flush(current: &mut Current) -> anyhow::Result<()> {
        if let Some((tenant, table, columns, batch)) = current {
            let rows = std::mem::take(batch);
            tenant.restore_rows(table, columns, rows).await?;
        }
        Ok(())
    }
    while let Some(line) = rx.recv().await {
        match line? {
            Line::Script { kind, name: script, body, meta } => {
                let kind = ScriptKind::parse(&kind).ok_or_else(|| anyhow::anyhow!("a script of unknown kind {kind}"))?;
                app.storage.put_script(name, kind, &script, &body, &meta).await?;
                got.scripts += 1;
            }
            Line::Provider { name: provider, kind, client_id, secret, secret_hint, config } => {
                let secret_sealed = secret.map(|s| app.identity_key.seal(name, &provider, &s)).unwrap_or_default();
                let record =
                    roost_storage::identity::ProviderRecord { name: provider, kind, client_id, secret_sealed, secret_hint, config, updated_at: String::new() };
                app.storage.put_provider(name, &record).await?;
                got.providers += 1;
            }
            Line::Packages { manifest, lock, lock_hash } => {
                anyhow::ensure!(crate::packages::lock_hash(&lock) == lock_hash, "the archive's package lock does not match its hash");
                // Installed from the lock (npm ci) on each node when a script first needs it.
                app.storage.put_packages(name, &manifest, &lock, &lock_hash).await?;
            }
            Line::Vapid { public, private } => {
                let sealed = app.identity_key.seal(name, crate::push::VAPID_SEAL, &private);
                app.storage.put_vapid(name, &public, &sealed, true).await?;
            }
            Line::PushCredential { platform, config, secret } => {
                let seal = match platform.as_str() {
                    "fcm" => crate::push::native::FCM_SEAL,
                    "apns" => crate::push::native::APNS_SEAL,
                    other => anyhow::bail!("push credentials of unknown platform {other}"),
                };
                app.storage.put_platform_credential(name, &platform, &config, &app.identity_key.seal(name, seal, &secret)).await?;
            }
            Line::Registration(r) => {
                app.storage.restore_registration(name, &r).await?;
                got.registrations += 1;
            }
            Line::Table { name: table, id_kind, soft_delete, permissions, columns } => {
                flush(&mut current).await?;
                if let Some((tenant, table, ..)) = &current {
                    tenant.restore_finish(table).await?;
                }
                let record = TableRecord { name: table.clone(), id_kind, soft_delete, permissions };
                app.storage.create_table(name, &record).await?;
                let columns: Vec<Column> = columns
                    .into_iter()
                    .map(|(n, t)| snapshot::type_of_name(&t).map(|ty| Column { name: n, ty }).ok_or_else(|| anyhow::anyhow!("a column of unknown type {t}")))
                    .collect::<anyhow::Result<_>>()?;
                for c in snapshot::added_columns(&record, &columns) {
                    app.storage.add_column(name, &table, &c.name, c.ty).await?;
                }
                let tenant = app.storage.tenant(name).await?.ok_or_else(|| anyhow::anyhow!("the tenant vanished"))?;
                let t = tenant.table(&table).ok_or_else(|| anyhow::anyhow!("table {table} was not created"))?;
                current = Some((tenant, t, columns, Vec::new()));
                got.tables += 1;
            }
            Line::R(values) => {
                let Some((_, _, columns, batch)) = &mut current else { anyhow::bail!("a row before any table") };
                anyhow::ensure!(values.len() == columns.len(), "a row with {} values for {} columns", values.len(), columns.len());
                let row = values.into_iter().zip(columns.iter()).map(|(v, c)| decode(v, c.ty)).collect::<anyhow::Result<Vec<_>>>()?;
                batch.push(row);
                got.rows += 1;
                let per = (ROWS_PER_STATEMENT * 8 / columns.len().max(8)).max(1);
                if batch.len() >= per {
                    flush(&mut current).await?;
                }
            }
            Line::End(summary) => {
                flush(&mut current).await?;
                if let Some((tenant, table, ..)) = &current {
                    tenant.restore_finish(table).await?;
                }
                let want = Summary { tenant: got.tenant.clone(), ..summary };
                anyhow::ensure!(want == got, "the archive says it holds {want:?} but {got:?} was read");
                return Ok(got);
            }
            Line::Header { .. } | Line::Tenant { .. } => anyhow::bail!("a second header in the archive"),
        }
    }
    anyhow::bail!("the archive ends before its last line: it is truncated")
}

/// Scheduled backups (`backup_dir`, `backup_every_hours`, `backup_keep`): each period, every tenant
/// is backed up once across all nodes (the period is claimed in the catalog like a job run) into
/// `<backup_dir>/<tenant>/`, keeping the newest `backup_keep` archives.
pub async fn scheduled(app: &AppState, dir: &std::path::Path, every_hours: u64, keep: usize) {
    let seconds = every_hours.max(1) as i64 * 3600;
    let period = chrono::Utc::now().timestamp() / seconds * seconds;
    // The claim's "due time" is the period's start.
    let due = chrono::DateTime::from_timestamp(period, 0).map(|d| roost_odata::format_datetime(&d)).unwrap_or_default();
    let Ok(tenants) = app.storage.list_tenants().await else { return };
    for t in tenants {
        match app.storage.claim_job_run(&t.name, SCHEDULED_JOB, &due).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(tenant.name = %t.name, error.cause = %e, "Could not claim a scheduled backup");
                continue;
            }
        }
        let folder = dir.join(&t.name);
        let started = std::time::Instant::now();
        let outcome = async {
            std::fs::create_dir_all(&folder)?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let path = folder.join(format!("{}-{stamp}.roostbak", t.name));
            let s = to_file(app, &t.name, &path).await?;
            prune_folder(&folder, keep)?;
            anyhow::Ok((path, s))
        }
        .await;
        let outcome = match outcome {
            Ok((path, s)) => {
                tracing::info!(tenant.name = %t.name, path = %path.display(), rows = s.rows, "Backed up");
                roost_api::JobOutcome::Succeeded
            }
            Err(e) => {
                tracing::warn!(tenant.name = %t.name, error.cause = %e, "A scheduled backup failed");
                roost_api::JobOutcome::failed(e.to_string())
            }
        };
        let _ = app.storage.finish_job_run(&t.name, SCHEDULED_JOB, &due, &outcome, started.elapsed().as_millis() as i64).await;
    }
}

/// The job name scheduled backups are claimed under (no script can have it: it has a `:`).
pub const SCHEDULED_JOB: &str = "roost:backup";

/// Keeps the newest `keep` archives of a folder.
fn prune_folder(folder: &std::path::Path, keep: usize) -> std::io::Result<()> {
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(folder)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "roostbak")).collect();
    // The names hold a UTC timestamp: by name is by age.
    files.sort();
    let n = files.len().saturating_sub(keep.max(1));
    for f in files.into_iter().take(n) {
        std::fs::remove_file(f)?;
    }
    Ok(())
}

use crate::ExposeSecret as _;
