//! `roost tenant import|export`: a tenant in the Mobile Services source-control layout (§6.1):
//!
//! ```text
//! table/<t>.json                 permissions (§5.2); declares the table. Roost adds an optional
//!                                "roost": {"idKind": "integer", "softDelete": true}
//! table/<t>.<insert|read|update|delete>.js
//! api/<name>.js, api/<name>.json scripts and their route permissions
//! scheduler/<job>.js             job scripts; Roost adds scheduler/<job>.json with the schedule
//! shared/<name>.js               shared modules
//! extensions/startup.js          run once after import (§6.12)
//! extensions/push.js, push.json  the registration hook and the push routes' permissions (§5.2, §6.12)
//! package.json                   npm dependencies, installed before anything changes (never node_modules)
//! settings.json                  Roost's addition: the service's settings as Mobile Services named them
//!                                (§6.13), a flat object of strings: the identity providers'
//!                                `MS_GoogleClientID|ClientSecret|Scope`, `MS_MicrosoftClientID|…`,
//!                                `MS_FacebookAppID|AppSecret|Scope`, `MS_AadClientID|Tenants`, and app settings
//!                                (any other name not starting with `MS_`)
//! ```
//!
//! File names match case-insensitively. Every script's syntax is checked before anything changes, so
//! a folder with one broken file changes nothing.

use crate::manage::{self, ManageError};
use roost_api::{ApiPermissions, IdKind, JobSchedule, Permission, ScriptIn, TableIn, TablePermissions, TenantOut};
use roost_storage::scripts::ScriptKind;
use roost_storage::Storage;
use secrecy::ExposeSecret as _;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::Path;

/// A script of the folder: kind, name, text, API permissions, job schedule.
type FolderScript = (ScriptKind, String, String, Option<ApiPermissions>, Option<JobSchedule>);

/// What the folder holds, parsed and checked.
#[derive(Debug, Default)]
struct Folder {
    /// Table (as named by its files) → (permissions file, id kind, soft delete).
    tables: BTreeMap<String, (Option<TablePermissions>, IdKind, bool)>,
    /// Every script.
    scripts: Vec<FolderScript>,
    /// `settings.json`, if any.
    settings: BTreeMap<String, String>,
}

/// What an identity-provider setting of §6.13 sets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProviderField {
    ClientId,
    Secret,
    Scope,
    Tenants,
}

/// The §6.13 settings of identity providers: setting, provider, what it sets.
const PROVIDER_SETTINGS: [(&str, &str, ProviderField); 11] = [
    ("MS_GoogleClientID", "google", ProviderField::ClientId),
    ("MS_GoogleClientSecret", "google", ProviderField::Secret),
    ("MS_GoogleScope", "google", ProviderField::Scope),
    ("MS_MicrosoftClientID", "microsoftaccount", ProviderField::ClientId),
    ("MS_MicrosoftClientSecret", "microsoftaccount", ProviderField::Secret),
    ("MS_MicrosoftScope", "microsoftaccount", ProviderField::Scope),
    ("MS_FacebookAppID", "facebook", ProviderField::ClientId),
    ("MS_FacebookAppSecret", "facebook", ProviderField::Secret),
    ("MS_FacebookScope", "facebook", ProviderField::Scope),
    ("MS_AadClientID", "aad", ProviderField::ClientId),
    ("MS_AadTenants", "aad", ProviderField::Tenants),
];

/// The folder's `settings.json` as providers (by name) and app settings; other `MS_` names are
/// returned apart (they are the platform's: keys, connection strings).
fn split_settings(settings: &BTreeMap<String, String>) -> (BTreeMap<&'static str, roost_api::ProviderIn>, BTreeMap<String, String>, Vec<String>) {
    let (mut providers, mut app, mut ignored) = (BTreeMap::<&'static str, roost_api::ProviderIn>::new(), BTreeMap::new(), Vec::new());
    for (k, v) in settings {
        match PROVIDER_SETTINGS.iter().find(|(name, _, _)| name.eq_ignore_ascii_case(k)) {
            Some((_, provider, field)) => {
                let p = providers.entry(provider).or_default();
                match field {
                    ProviderField::ClientId => p.client_id = v.clone(),
                    ProviderField::Secret => p.client_secret = Some(v.clone()),
                    ProviderField::Scope => p.scopes = Some(v.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect()),
                    ProviderField::Tenants => p.entra_tenants = v.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect(),
                }
            }
            None if k.len() >= 3 && k[..3].eq_ignore_ascii_case("MS_") => ignored.push(k.clone()),
            None => {
                app.insert(k.clone(), v.clone());
            }
        }
    }
    (providers, app, ignored)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
}

fn files(dir: &Path) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        if e.file_type()?.is_file() {
            out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Finds a sub-folder case-insensitively (`Table/` and `table/` both work).
fn sub(dir: &Path, name: &str) -> std::path::PathBuf {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().eq_ignore_ascii_case(name) {
                return e.path();
            }
        }
    }
    dir.join(name)
}

/// Table permissions from a §5.2 metadata file: the `/` route (else `*`), then per operation or verb.
fn table_permissions(v: &Json, file: &Path) -> anyhow::Result<TablePermissions> {
    let bad = |m: &str| anyhow::anyhow!("{}: {m}", file.display());
    let routes = v.get("routes").and_then(Json::as_object).ok_or_else(|| bad("a permissions file needs a top-level 'routes' object"))?;
    let route = routes.iter().find(|(k, _)| k.trim_matches('/').is_empty() && *k != "*").or_else(|| routes.iter().find(|(k, _)| *k == "*")).map(|(_, v)| v);
    // Without a matching route every operation falls back to admin (§5.1).
    let mut p = TablePermissions { insert: Permission::Admin, read: Permission::Admin, update: Permission::Admin, delete: Permission::Admin };
    let Some(route) = route.and_then(Json::as_object) else { return Ok(p) };
    let level = |e: &Json| -> anyhow::Result<Permission> {
        let s = e.get("permission").and_then(Json::as_str).ok_or_else(|| bad("each entry must be {\"permission\": \"…\"}"))?;
        Permission::parse(s).ok_or_else(|| bad(&format!("'{s}' is not a permission (public, application, user, authenticated, admin)")))
    };
    if route.contains_key("permission") {
        let l = level(&Json::Object(route.clone()))?;
        return Ok(TablePermissions { insert: l, read: l, update: l, delete: l });
    }
    if let Some(all) = route.get("*") {
        let l = level(all)?;
        p = TablePermissions { insert: l, read: l, update: l, delete: l };
    }
    for (k, e) in route {
        let l = level(e)?;
        // The format also names the operations by their HTTP verbs.
        let op = match k.to_ascii_lowercase().as_str() {
            "*" => continue,
            "post" => "insert".to_string(),
            "get" => "read".to_string(),
            "patch" => "update".to_string(),
            other => other.to_string(),
        };
        *p.by_name_mut(&op).ok_or_else(|| bad(&format!("'{op}' is not a table operation")))? = l;
    }
    Ok(p)
}

/// The `.js` files of a folder (name without `.js`, text), each with its `<name>.json` parsed if present.
fn scripts_with_json<T: serde::de::DeserializeOwned>(dir: &Path) -> anyhow::Result<Vec<(String, String, Option<T>)>> {
    let all = files(dir)?;
    let mut out = Vec::new();
    for (name, path) in &all {
        let Some(stem) = name.to_ascii_lowercase().strip_suffix(".js").map(|_| name[..name.len() - 3].to_string()) else { continue };
        let meta = match all.iter().find(|(n, _)| n.eq_ignore_ascii_case(&format!("{stem}.json"))) {
            Some((_, p)) => Some(serde_json::from_str::<T>(&read(p)?).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?),
            None => None,
        };
        out.push((stem, read(path)?, meta));
    }
    Ok(out)
}

fn parse_folder(dir: &Path) -> anyhow::Result<Folder> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a folder", dir.display());
    }
    let mut f = Folder::default();
    let mut table_scripts = Vec::new();
    for (name, path) in files(&sub(dir, "table"))? {
        let lower = name.to_ascii_lowercase();
        if let Some(t) = lower.strip_suffix(".json").map(|_| &name[..name.len() - 5]) {
            let v: Json = serde_json::from_str(&read(&path)?).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let perms = table_permissions(&v, &path)?;
            let id_kind = if v.pointer("/roost/idKind").and_then(Json::as_str).is_some_and(|k| k.eq_ignore_ascii_case("integer")) {
                IdKind::Integer
            } else {
                IdKind::String
            };
            let soft = v.pointer("/roost/softDelete").and_then(Json::as_bool).unwrap_or(false);
            f.tables.insert(t.to_string(), (Some(perms), id_kind, soft));
        } else if let Some(stem) = lower.strip_suffix(".js").map(|_| &name[..name.len() - 3]) {
            let (t, op) = stem.rsplit_once('.').ok_or_else(|| anyhow::anyhow!("{}: a table script is named <table>.<operation>.js", path.display()))?;
            table_scripts.push((t.to_string(), op.to_ascii_lowercase(), read(&path)?));
        }
    }
    for (t, op, body) in table_scripts {
        // Names match case-insensitively: the permissions file's casing wins.
        let known = f.tables.keys().find(|k| k.eq_ignore_ascii_case(&t)).cloned();
        let t = known.unwrap_or_else(|| {
            f.tables.insert(t.clone(), (None, IdKind::String, false));
            t
        });
        f.scripts.push((ScriptKind::Table, format!("{t}.{op}"), body, None, None));
    }
    for (stem, body, permissions) in scripts_with_json::<ApiPermissions>(&sub(dir, "api"))? {
        f.scripts.push((ScriptKind::Api, stem, body, permissions, None));
    }
    for (stem, body, schedule) in scripts_with_json::<JobSchedule>(&sub(dir, "scheduler"))? {
        f.scripts.push((ScriptKind::Job, stem, body, None, schedule));
    }
    for (name, path) in files(&sub(dir, "shared"))? {
        if let Some(stem) = name.to_ascii_lowercase().strip_suffix(".js").map(|_| name[..name.len() - 3].to_string()) {
            f.scripts.push((ScriptKind::Shared, stem, read(&path)?, None, None));
        }
    }
    for (stem, body, permissions) in scripts_with_json::<ApiPermissions>(&sub(dir, "extensions"))? {
        match stem.to_ascii_lowercase().as_str() {
            "startup" => f.scripts.push((ScriptKind::Extension, "startup".into(), body, None, None)),
            "push" => f.scripts.push((ScriptKind::Extension, "push".into(), body, permissions, None)),
            _ => {}
        }
    }
    // Syntax first: nothing changes if any script is broken.
    for (kind, name, body, _, _) in &f.scripts {
        let k = match kind {
            ScriptKind::Table => roost_scripts::ScriptKind::Table(name.rsplit_once('.').map(|(_, op)| op.to_string()).unwrap_or_default()),
            ScriptKind::Api => roost_scripts::ScriptKind::Api,
            ScriptKind::Job => roost_scripts::ScriptKind::Job(name.clone()),
            ScriptKind::Shared => roost_scripts::ScriptKind::Shared,
            ScriptKind::Extension => roost_scripts::ScriptKind::Startup,
        };
        roost_scripts::check_syntax(&k, body).map_err(|e| anyhow::anyhow!("{}/{name}.js: {e}", kind.folder()))?;
    }
    let settings = sub(dir, "settings.json");
    if settings.is_file() {
        let v: Json = serde_json::from_str(&read(&settings)?).map_err(|e| anyhow::anyhow!("{}: {e}", settings.display()))?;
        let Json::Object(m) = v else { anyhow::bail!("{}: settings are an object of strings", settings.display()) };
        for (k, v) in m {
            let Json::String(v) = v else { anyhow::bail!("{}: the setting {k} is not a string", settings.display()) };
            f.settings.insert(k, v);
        }
        for (provider, p) in split_settings(&f.settings).0 {
            if p.client_id.is_empty() {
                anyhow::bail!("{}: the {provider} settings have no client id", settings.display());
            }
        }
    }
    Ok(f)
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// The tenant (as `tenant create` prints it), and whether the import created it.
    pub tenant: TenantOut,
    /// True if the tenant was created by this import.
    pub created: bool,
    /// Tables created, and tables kept.
    pub tables_created: Vec<String>,
    /// Tables that existed and were kept.
    pub tables_kept: Vec<String>,
    /// Scripts stored (paths).
    pub scripts: Vec<String>,
    /// Whether `extensions/startup.js` ran.
    pub startup_ran: bool,
    /// Bundled packages Roost added to package.json (`name@range`).
    pub packages_added: Vec<String>,
    /// Installed packages and their versions.
    pub packages: BTreeMap<String, String>,
    /// Identity providers set from `settings.json`.
    pub providers: Vec<String>,
    /// `MS_` settings of `settings.json` Roost does not take (keys, connection strings, …).
    pub settings_ignored: Vec<String>,
}

/// The folder's `package.json` (matched case-insensitively), if any.
fn folder_manifest(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = sub(dir, "package.json");
    if path.is_file() {
        Ok(Some(read(&path)?))
    } else {
        Ok(None)
    }
}

/// Imports a folder into a tenant (created if missing). Existing tables keep their id kind, columns
/// and rows, and take the folder's permissions and scripts.
pub async fn import(config: &crate::Config, name: &str, dir: &Path) -> anyhow::Result<ImportReport> {
    let folder = parse_folder(dir)?;
    let app = crate::build_for_cli(config).await?;
    let storage: &Storage = &app.storage;
    // Packages are resolved and installed before anything changes: an unknown package (or no npm)
    // fails the import with the tenant as it was.
    let existing = manage::show_tenant(storage, name).await.ok();
    let from_folder = folder_manifest(dir)?;
    let stored = match &existing {
        Some(t) => storage.package_record(&t.name).await?,
        None => None,
    };
    let limits = crate::packages::Limits::of(&existing.as_ref().map(|t| t.settings.clone()).unwrap_or_default());
    let texts = folder.scripts.iter().map(|s| s.2.as_str());
    let pending = crate::packages::prepare(&app.packages_root, from_folder.as_deref(), stored.as_ref(), texts, limits).await?;
    let (tenant, created) = match existing {
        Some(t) => (t, false),
        None => (manage::create_tenant(storage, &app.maxima, manage::SettingsBy::Admin, name, None).await?, true),
    };
    let mut report = ImportReport {
        tenant,
        created,
        tables_created: Vec::new(),
        tables_kept: Vec::new(),
        scripts: Vec::new(),
        startup_ran: false,
        packages_added: Vec::new(),
        packages: BTreeMap::new(),
        providers: Vec::new(),
        settings_ignored: Vec::new(),
    };
    if let Some(p) = &pending {
        manage::commit_packages(storage, name, p).await?;
        report.packages_added = p.added.clone();
        report.packages = crate::packages::resolved_versions(&p.lock);
    }
    for (table, (perms, id_kind, soft)) in &folder.tables {
        match manage::show_table(storage, name, table).await {
            Ok(t) => {
                if let Some(p) = perms {
                    manage::set_permissions(storage, name, &t.name, p).await?;
                }
                report.tables_kept.push(t.name);
            }
            Err(ManageError::NotFound(_)) => {
                let spec = TableIn { name: table.clone(), id_kind: *id_kind, soft_delete: *soft, permissions: perms.unwrap_or_default() };
                manage::create_table(storage, &app.tiers, name, &spec).await?;
                report.tables_created.push(table.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
    for (kind, script_name, body, permissions, schedule) in folder.scripts {
        let input = ScriptIn { body, permissions, schedule };
        let out = manage::put_script(storage, name, kind.as_str(), &script_name, &input).await?;
        report.scripts.push(out.path);
    }
    let (providers, app_settings, ignored) = split_settings(&folder.settings);
    report.settings_ignored = ignored;
    if !app_settings.is_empty() {
        let mut merged = report.tenant.settings.app_settings.clone();
        merged.extend(app_settings);
        let patch = roost_api::TenantSettingsPatch { app_settings: Some(merged), ..Default::default() };
        report.tenant = manage::update_settings(storage, &app.maxima, manage::SettingsBy::Admin, name, &patch).await?;
    }
    for (provider, input) in providers {
        crate::identity::put(&app, name, provider, input).await?;
        report.providers.push(provider.to_string());
    }
    if let Some(t) = storage.tenant(name).await? {
        report.startup_ran = crate::scripting::run_startup(&app, &t).await;
        if report.startup_ran {
            // The script may have written rows a running server has cached.
            storage.announce_change().await?;
        }
    }
    app.logs.flush().await;
    Ok(report)
}

/// Writes a tenant into a folder in the same layout; `settings.json` holds its app settings and its
/// providers' client ids, and their secrets only `with_secrets` (then the folder holds secrets).
pub async fn export(app: &crate::AppState, name: &str, dir: &Path, with_secrets: bool) -> anyhow::Result<usize> {
    let storage: &Storage = &app.storage;
    let tables = manage::list_tables(storage, name).await?;
    let scripts = manage::list_scripts(storage, name).await?;
    let mut written = 0;
    let write = |rel: String, text: String| -> anyhow::Result<()> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir)?;
    let tenant = storage.tenant(name).await?.ok_or_else(|| ManageError::NotFound(format!("Tenant '{name}'")))?;
    let mut settings: BTreeMap<String, String> = tenant.record.settings.app_settings.clone();
    for p in &tenant.providers {
        for (setting, provider, field) in PROVIDER_SETTINGS {
            if provider != p.name {
                continue;
            }
            let config: crate::identity::ProviderConfig = serde_json::from_str(&p.config).unwrap_or_default();
            let value = match field {
                ProviderField::ClientId => Some(p.client_id.clone()),
                ProviderField::Scope => Some(config.scopes.join(" ")),
                ProviderField::Tenants => Some(config.entra_tenants.join(",")).filter(|t| !t.is_empty()),
                ProviderField::Secret if with_secrets && !p.secret_sealed.is_empty() => {
                    Some(app.identity_key.open(&tenant.record.name, &p.name, &p.secret_sealed).map_err(|e| anyhow::anyhow!("{e}"))?.expose_secret().to_string())
                }
                ProviderField::Secret => None,
            };
            if let Some(v) = value {
                settings.insert(setting.to_string(), v);
            }
        }
    }
    if !settings.is_empty() {
        write("settings.json".into(), serde_json::to_string_pretty(&settings)?)?;
        written += 1;
    }
    if let Some(p) = storage.package_record(name).await? {
        write("package.json".into(), p.manifest)?;
        written += 1;
    }
    for t in &tables {
        let p = &t.permissions;
        let mut v = json!({ "routes": { "/": {
            "insert": { "permission": p.insert.as_str() },
            "read": { "permission": p.read.as_str() },
            "update": { "permission": p.update.as_str() },
            "delete": { "permission": p.delete.as_str() },
        } } });
        if t.id_kind == IdKind::Integer || t.soft_delete {
            v["roost"] = json!({ "idKind": if t.id_kind == IdKind::Integer { "integer" } else { "string" }, "softDelete": t.soft_delete });
        }
        write(format!("table/{}.json", t.name), serde_json::to_string_pretty(&v)?)?;
        written += 1;
    }
    for s in scripts {
        write(s.path.trim_start_matches('/').to_string(), s.body)?;
        written += 1;
        if let Some(p) = s.permissions {
            // Beside its script: api/<name>.json, extensions/push.json.
            let file = s.path.trim_start_matches('/').trim_end_matches(".js").to_string();
            write(format!("{file}.json"), serde_json::to_string_pretty(&p)?)?;
            written += 1;
        }
        if let Some(sch) = s.schedule {
            write(format!("scheduler/{}.json", s.name), serde_json::to_string_pretty(&sch)?)?;
            written += 1;
        }
    }
    Ok(written)
}
