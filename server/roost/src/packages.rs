//! A tenant's npm packages: its `package.json` (dependencies), resolved and installed by npm
//! (`--omit=dev --ignore-scripts`: no package code runs on the host) into a staging folder that is
//! renamed into place, so scripts never see a half-installed tree. Each install is an immutable
//! folder named by the SHA-256 of its lock under `<data>/packages/`; the lock is stored in the
//! catalog, so every node installs exactly the same versions (`npm ci`) when it first loads the
//! tenant. [`Resolver`] finds `require`d modules in an install the Node way.

use crate::manage::ManageError;
use roost_scripts::Resolved;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pure-JavaScript packages the Mobile Services runtime bundled (protocol §6.9), at the
/// versions it shipped: a script may require them without declaring them.
pub const BUNDLED: &[(&str, &str)] = &[
    ("async", "^0.1.22"),
    ("underscore", "^1.4.4"),
    ("underscore.string", "^2.3.0"),
    ("xml2js", "^0.2.8"),
    ("xmlbuilder", "^0.4.2"),
    ("sax", "^0.5.2"),
    ("oauth", "^0.9.8"),
];

/// Install limits of a tenant (its settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// npm may take this long.
    pub install_seconds: u64,
    /// The installed tree may take this much disk.
    pub max_mb: u64,
}

impl Limits {
    /// A tenant's limits.
    pub fn of(settings: &roost_api::TenantSettings) -> Self {
        Self { install_seconds: settings.packages_install_seconds, max_mb: settings.packages_max_mb }
    }
}

/// Where installs live.
pub fn root(data: &Path) -> PathBuf {
    data.join("packages")
}

/// The package names `text` requires (`require('x')`, `require("x/sub")` → `x`).
pub fn required_packages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("require") {
        rest = &rest[i + "require".len()..];
        let t = rest.trim_start();
        let Some(t) = t.strip_prefix('(') else { continue };
        let t = t.trim_start();
        let Some(q) = t.chars().next().filter(|c| *c == '\'' || *c == '"') else { continue };
        let Some(end) = t[1..].find(q) else { continue };
        let id = &t[1..1 + end];
        if id.starts_with('.') || id.starts_with('/') || id.is_empty() {
            continue;
        }
        let name = match id.strip_prefix('@') {
            Some(_) => id.splitn(3, '/').take(2).collect::<Vec<_>>().join("/"),
            None => id.split('/').next().unwrap_or(id).to_string(),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Parses a `package.json` text: an object whose `dependencies` (if any) maps names to version
/// ranges. Other members are kept as they are.
pub fn parse_manifest(text: &str) -> Result<Map<String, Json>, ManageError> {
    let v: Json = serde_json::from_str(text).map_err(|e| ManageError::BadInput(format!("package.json is not valid JSON: {e}")))?;
    let Json::Object(m) = v else { return Err(ManageError::BadInput("package.json must be a JSON object.".into())) };
    match m.get("dependencies") {
        None => {}
        Some(Json::Object(deps)) => {
            for (name, range) in deps {
                if !valid_name(name) {
                    return Err(ManageError::BadInput(format!("package.json: '{name}' is not an npm package name.")));
                }
                let Some(range) = range.as_str() else {
                    return Err(ManageError::BadInput(format!("package.json: the version of '{name}' must be a string.")));
                };
                if !registry_spec(range) {
                    return Err(ManageError::BadInput(format!(
                        "package.json: the dependency '{name}' is \"{range}\", which is not from the npm registry. Only registry versions are accepted: a version or range (\"^1.2.0\"), a tag (\"latest\") or an alias (\"npm:other@^1\"); file:, link:, git, URL, user/repo and workspace: dependencies are refused."
                    )));
                }
            }
        }
        Some(_) => return Err(ManageError::BadInput("package.json: dependencies must be an object.".into())),
    }
    Ok(m)
}

/// A dependency npm fetches from the registry: a semver range or version, a dist-tag, or an
/// `npm:` alias of such. Everything else npm understands (`file:`, `link:`, `git+…`, `http(s):`,
/// `user/repo`, `workspace:`, paths) would make it read the host or fetch an arbitrary URL.
pub fn registry_spec(spec: &str) -> bool {
    let spec = spec.trim();
    if let Some(alias) = spec.strip_prefix("npm:") {
        // `name@range`, the name possibly scoped (`@scope/name@range`), or a bare name.
        let (name, range) = match alias.get(1..).and_then(|rest| rest.rfind('@')) {
            Some(i) => (&alias[..i + 1], &alias[i + 2..]),
            None => (alias, ""),
        };
        return valid_name(name) && registry_range(range);
    }
    registry_range(spec)
}

/// A semver range, version or dist-tag: none of them contains `/`, `:`, `\\`, `#` or `@`, starts
/// with `.`, or names a home folder (`~/`).
fn registry_range(r: &str) -> bool {
    r.len() <= 256 && !r.starts_with('.') && !r.contains("~/") && r.chars().all(|c| c.is_ascii_alphanumeric() || " .-+~^<>=|*_".contains(c))
}

fn valid_name(name: &str) -> bool {
    let bare = name.strip_prefix('@').map(|s| s.replacen('/', "", 1)).unwrap_or_else(|| name.to_string());
    !name.is_empty() && name.len() <= 214 && !name.starts_with('.') && bare.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~".contains(c))
}

/// The dependencies of a manifest.
pub fn dependencies(m: &Map<String, Json>) -> BTreeMap<String, String> {
    m.get("dependencies")
        .and_then(Json::as_object)
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("*").to_string())).collect())
        .unwrap_or_default()
}

/// Adds the bundled packages `scripts` require and `m` does not declare; returns what it added.
pub fn add_bundled<'a>(m: &mut Map<String, Json>, scripts: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    let declared = dependencies(m);
    let mut added = Vec::new();
    for text in scripts {
        for name in required_packages(text) {
            if declared.contains_key(&name) || added.iter().any(|(n, _): &(String, String)| *n == name) {
                continue;
            }
            if let Some((_, range)) = BUNDLED.iter().find(|(b, _)| *b == name) {
                added.push((name.clone(), range.to_string()));
            }
        }
    }
    if !added.is_empty() {
        let deps = m.entry("dependencies").or_insert_with(|| Json::Object(Map::new()));
        if let Json::Object(d) = deps {
            for (n, r) in &added {
                d.insert(n.clone(), Json::String(r.clone()));
            }
        }
    }
    added
}

/// The text stored and exported for a manifest.
pub fn manifest_text(m: &Map<String, Json>) -> String {
    let mut s = serde_json::to_string_pretty(m).unwrap_or_default();
    s.push('\n');
    s
}

/// SHA-256 hex of a lock.
pub fn lock_hash(lock: &str) -> String {
    crate::accounts::secret_hash(lock)
}

/// The versions a lock resolved: `name → version` for the top-level packages.
pub fn resolved_versions(lock: &str) -> BTreeMap<String, String> {
    let v: Json = serde_json::from_str(lock).unwrap_or(Json::Null);
    let mut out = BTreeMap::new();
    if let Some(pkgs) = v.get("packages").and_then(Json::as_object) {
        for (path, p) in pkgs {
            if let Some(name) = path.strip_prefix("node_modules/").filter(|n| !n.contains("/node_modules/")) {
                if let Some(ver) = p.get("version").and_then(Json::as_str) {
                    out.insert(name.to_string(), ver.to_string());
                }
            }
        }
    }
    out
}

fn disk_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += disk_size(&e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Turns npm's complaint into a message naming the package and the cause.
fn npm_failure(stderr: &str, deps: &BTreeMap<String, String>) -> String {
    let lines: Vec<&str> = stderr.lines().map(|l| l.trim_start_matches("npm error").trim_start_matches("npm ERR!").trim()).filter(|l| !l.is_empty()).collect();
    if let Some(l) = lines.iter().find(|l| l.contains("404 Not Found - GET ")) {
        let url = l.rsplit("GET ").next().unwrap_or_default().split_whitespace().next().unwrap_or_default();
        let name = url.rsplit('/').next().unwrap_or(url).replace("%2f", "/").replace("%2F", "/");
        return format!("The npm package '{name}' does not exist in the registry (npm: {l}).");
    }
    if let Some(l) = lines.iter().find(|l| l.contains("is not in this registry")) {
        return format!("An npm package does not exist: {l}");
    }
    if let Some(l) = lines.iter().find(|l| l.contains("No matching version found for")) {
        return format!("An npm package has no such version: {l}");
    }
    if let Some(l) = lines.iter().find(|l| l.contains("ENOTFOUND") || l.contains("ECONNREFUSED") || l.contains("ETIMEDOUT") || l.contains("EAI_AGAIN")) {
        return format!("The npm registry could not be reached while installing {}: {l}", deps.keys().cloned().collect::<Vec<_>>().join(", "));
    }
    format!("npm could not install {}: {}", deps.keys().cloned().collect::<Vec<_>>().join(", "), lines.iter().take(6).cloned().collect::<Vec<_>>().join(" | "))
}

/// The npm registry installs use (the `npm_registry` setting, set once by the server at start).
static REGISTRY: std::sync::RwLock<String> = std::sync::RwLock::new(String::new());

/// Sets the registry npm installs from (`npm_registry`).
pub fn set_registry(url: &str) {
    let mut url = url.trim().to_string();
    if !url.ends_with('/') {
        url.push('/');
    }
    *REGISTRY.write().unwrap_or_else(|e| e.into_inner()) = url;
}

fn registry() -> String {
    let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner()).clone();
    if r.is_empty() {
        "https://registry.npmjs.org/".into()
    } else {
        r
    }
}

/// Environment variables npm inherits: where programs are, the locale, and the operator's network
/// settings (CA bundles, proxies). Nothing else: no `NPM_TOKEN`, no `npm_config_*`, no `NODE_OPTIONS`.
const NPM_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
];

/// npm's home and configuration, Roost's own: `<root>/.npm/home` (its cache is there too), an
/// npmrc naming the configured registry as the user config and an empty global config.
fn npm_config(root: &Path) -> Result<(PathBuf, PathBuf, PathBuf), ManageError> {
    let home = root.join(".npm").join("home");
    std::fs::create_dir_all(&home).map_err(|e| ManageError::Internal(format!("creating {}: {e}", home.display())))?;
    let rc = root.join(".npm").join("npmrc");
    let text = format!("registry={}\nomit-lockfile-registry-resolved=false\naudit=false\nfund=false\nupdate-notifier=false\n", registry());
    if std::fs::read_to_string(&rc).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&rc, text).map_err(|e| ManageError::Internal(format!("writing {}: {e}", rc.display())))?;
    }
    let global = root.join(".npm").join("global-npmrc");
    if !global.is_file() {
        std::fs::write(&global, "").map_err(|e| ManageError::Internal(format!("writing {}: {e}", global.display())))?;
    }
    Ok((home, rc, global))
}

/// Runs npm in `dir` with the tenant's time limit, in an environment and configuration of Roost's
/// choosing.
async fn npm(dir: &Path, args: &[&str], limits: Limits, deps: &BTreeMap<String, String>) -> Result<(), ManageError> {
    let npm = std::env::var("ROOST_NPM").unwrap_or_else(|_| "npm".into());
    let root = dir.parent().unwrap_or(dir);
    let (home, rc, global) = npm_config(root)?;
    let mut cmd = tokio::process::Command::new(&npm);
    cmd.env_clear();
    for k in NPM_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("HOME", &home).env("npm_config_userconfig", &rc).env("npm_config_globalconfig", &global).env("npm_config_registry", registry());
    cmd.args(args)
        .args(["--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        ManageError::BadInput(format!(
            "Installing the packages {} needs npm, which could not be started ({npm}: {e}); install Node.js and npm, or set ROOST_NPM.",
            deps.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let out = match tokio::time::timeout(Duration::from_secs(limits.install_seconds.max(1)), child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| ManageError::Internal(format!("npm: {e}")))?,
        Err(_) => {
            return Err(ManageError::BadInput(format!(
                "Installing {} took longer than the tenant's limit of {} s (packages_install_seconds).",
                deps.keys().cloned().collect::<Vec<_>>().join(", "),
                limits.install_seconds
            )))
        }
    };
    if !out.status.success() {
        return Err(ManageError::BadInput(npm_failure(&String::from_utf8_lossy(&out.stderr), deps)));
    }
    Ok(())
}

fn staging(root: &Path) -> Result<PathBuf, ManageError> {
    let dir = root.join(format!("staging-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| ManageError::Internal(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Checks the size, then renames `stage` to the install of `hash` (an existing one wins).
fn publish(root: &Path, stage: &Path, hash: &str, limits: Limits) -> Result<PathBuf, ManageError> {
    let size = disk_size(&stage.join("node_modules"));
    if size > limits.max_mb * 1024 * 1024 {
        let _ = std::fs::remove_dir_all(stage);
        return Err(ManageError::BadInput(format!(
            "The packages take {:.1} MB installed, more than the tenant's limit of {} MB (packages_max_mb).",
            size as f64 / 1048576.0,
            limits.max_mb
        )));
    }
    let target = root.join(hash);
    if target.is_dir() {
        let _ = std::fs::remove_dir_all(stage);
        return Ok(target);
    }
    match std::fs::rename(stage, &target) {
        Ok(()) => Ok(target),
        // Another install of the same lock won the race.
        Err(_) if target.is_dir() => {
            let _ = std::fs::remove_dir_all(stage);
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(stage);
            Err(ManageError::Internal(format!("moving the install into place: {e}")))
        }
    }
}

/// The `package.json` npm gets: the validated `dependencies` alone. Everything else an owner wrote
/// (`devDependencies`, `optionalDependencies`, `overrides`, `workspaces`, `bundleDependencies`…) is
/// kept for export but never read by npm, so none of it can name a path or a URL.
fn npm_manifest(m: &Map<String, Json>) -> String {
    let deps: Map<String, Json> = dependencies(m).into_iter().map(|(k, v)| (k, Json::String(v))).collect();
    serde_json::json!({ "name": "roost-tenant-packages", "version": "0.0.0", "private": true, "dependencies": deps }).to_string()
}

/// Every package of a lock comes from the configured registry: no links, no other sources (a
/// registry package's own dependencies could name git or a URL).
fn check_lock(lock: &str) -> Result<(), ManageError> {
    let v: Json = serde_json::from_str(lock).map_err(|e| ManageError::Internal(format!("package-lock.json: {e}")))?;
    let registry = registry();
    for (path, p) in v.get("packages").and_then(Json::as_object).into_iter().flatten() {
        if path.is_empty() {
            continue;
        }
        let name = path.rsplit("node_modules/").next().unwrap_or(path);
        let resolved = p.get("resolved").and_then(Json::as_str).unwrap_or("");
        if p.get("link").and_then(Json::as_bool).unwrap_or(false) || !resolved.starts_with(&registry) {
            return Err(ManageError::BadInput(format!(
                "The package '{name}' does not come from the npm registry ({}): only registry packages are installed.",
                if resolved.is_empty() { "no registry address" } else { resolved }
            )));
        }
    }
    Ok(())
}

/// Resolves and installs a manifest; the lock and its hash. Nothing in the catalog changes here.
pub async fn install(root: &Path, manifest: &str, limits: Limits) -> Result<(String, String), ManageError> {
    let m = parse_manifest(manifest)?;
    let deps = dependencies(&m);
    let stage = staging(root)?;
    let result = async {
        std::fs::write(stage.join("package.json"), npm_manifest(&m)).map_err(|e| ManageError::Internal(e.to_string()))?;
        npm(&stage, &["install", "--package-lock=true"], limits, &deps).await?;
        let lock =
            std::fs::read_to_string(stage.join("package-lock.json")).map_err(|e| ManageError::Internal(format!("npm wrote no package-lock.json: {e}")))?;
        check_lock(&lock)?;
        Ok::<_, ManageError>(lock)
    }
    .await;
    let lock = match result {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    };
    let hash = lock_hash(&lock);
    publish(root, &stage, &hash, limits)?;
    Ok((lock, hash))
}

/// A tenant's packages, resolved and installed, not yet stored.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The `package.json` text to store.
    pub manifest: String,
    /// The lock npm resolved (empty without dependencies).
    pub lock: String,
    /// Its hash (empty without dependencies).
    pub lock_hash: String,
    /// Bundled packages Roost added: `name@range`.
    pub added: Vec<String>,
}

/// Works out a tenant's packages from a new `package.json` (`manifest`; else the `stored` one) and
/// the texts of its `scripts`: adds the bundled packages they require, then installs (keeping the
/// stored lock when the dependencies did not change). `None` when there is no new manifest and
/// nothing to add. Shared by import, `PUT …/packages` and script saves.
pub async fn prepare<'a>(
    root: &Path,
    manifest: Option<&str>,
    stored: Option<&roost_storage::packages::PackageRecord>,
    scripts: impl Iterator<Item = &'a str>,
    limits: Limits,
) -> Result<Option<Pending>, ManageError> {
    let mut m = match (manifest, stored) {
        (Some(text), _) => parse_manifest(text)?,
        (None, Some(s)) => parse_manifest(&s.manifest)?,
        (None, None) => Map::new(),
    };
    let added = add_bundled(&mut m, scripts);
    if manifest.is_none() && added.is_empty() {
        return Ok(None);
    }
    let text = manifest_text(&m);
    let deps = dependencies(&m);
    let same = stored.filter(|s| !s.lock_hash.is_empty() && parse_manifest(&s.manifest).is_ok_and(|sm| dependencies(&sm) == deps));
    let (lock, lock_hash) = if deps.is_empty() {
        (String::new(), String::new())
    } else if let Some(s) = same {
        ensure_installed(root, s, limits).await?;
        (s.lock.clone(), s.lock_hash.clone())
    } else {
        install(root, &text, limits).await?
    };
    Ok(Some(Pending { manifest: text, lock, lock_hash, added: added.into_iter().map(|(n, v)| format!("{n}@{v}")).collect() }))
}

/// Makes sure this node has the install of a stored lock (`npm ci`: exactly the locked versions).
pub async fn ensure_installed(root: &Path, record: &roost_storage::packages::PackageRecord, limits: Limits) -> Result<PathBuf, ManageError> {
    let target = root.join(&record.lock_hash);
    if target.is_dir() {
        return Ok(target);
    }
    let deps = parse_manifest(&record.manifest).map(|m| dependencies(&m)).unwrap_or_default();
    let stage = staging(root)?;
    let result = async {
        check_lock(&record.lock)?;
        let m = parse_manifest(&record.manifest)?;
        std::fs::write(stage.join("package.json"), npm_manifest(&m)).map_err(|e| ManageError::Internal(e.to_string()))?;
        std::fs::write(stage.join("package-lock.json"), &record.lock).map_err(|e| ManageError::Internal(e.to_string()))?;
        npm(&stage, &["ci"], limits, &deps).await
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&stage);
        return Err(e);
    }
    publish(root, &stage, &record.lock_hash, limits)
}

/// Removes installs no tenant uses any more and staging folders left by interrupted installs, when
/// they are older than `min_age` (an install being published or switched to right now is young).
/// Returns the names removed.
pub fn prune(root: &Path, in_use: &[String], min_age: Duration) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `.npm` is npm's home and cache, not an install.
        if in_use.contains(&name) || name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= min_age);
        if old && std::fs::remove_dir_all(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// `require` inside one install, with what it has read and resolved cached (an install never
/// changes: a new lock is a new folder).
#[derive(Debug)]
pub struct Resolver {
    base: PathBuf,
    /// `base` with every symlink resolved: what every file read must stay inside.
    real_base: PathBuf,
    resolved: Mutex<HashMap<(String, String), Resolved>>,
}

fn dir_of(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

fn package_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/node_modules/")?;
    let end = if rest.starts_with('@') { rest.match_indices('/').nth(1).map(|(i, _)| i) } else { rest.find('/') };
    Some(&rest[..end.unwrap_or(rest.len())])
}

impl Resolver {
    /// A resolver over the install in `base`.
    pub fn new(base: PathBuf) -> Self {
        let real_base = base.canonicalize().unwrap_or_else(|_| base.clone());
        Self { base, real_base, resolved: Mutex::new(HashMap::new()) }
    }

    /// True when `path` (on disk), with its symlinks followed, is inside the install.
    fn inside(&self, path: &Path) -> bool {
        path.canonicalize().is_ok_and(|p| p.starts_with(&self.real_base))
    }

    fn disk(&self, path: &str) -> PathBuf {
        self.base.join(path.trim_start_matches('/'))
    }

    /// `require(id)` from the module at `from`.
    pub fn resolve(&self, from: &str, id: &str) -> Resolved {
        let key = (dir_of(from).to_string(), id.to_string());
        if let Some(r) = self.resolved.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return r.clone();
        }
        let r = self.find(from, id);
        self.resolved.lock().unwrap_or_else(|e| e.into_inner()).insert(key, r.clone());
        r
    }

    fn find(&self, from: &str, id: &str) -> Resolved {
        if id.starts_with('.') || id.starts_with('/') {
            // Relative requires resolve here only inside a package (shared modules are the script's).
            if package_of(from).is_none() {
                return Resolved::NotFound;
            }
            let path = normalize(&format!("{}/{id}", dir_of(from)));
            return self.file_or_dir(&path, package_of(&path).unwrap_or(id));
        }
        // node_modules folders from the requiring module's folder up to the root.
        let mut dir = dir_of(from).to_string();
        loop {
            if !dir.ends_with("/node_modules") {
                let candidate = normalize(&format!("{dir}/node_modules/{id}"));
                let root_of_package = normalize(&format!("{dir}/node_modules/{}", package_name(id)));
                if self.disk(&root_of_package).is_dir() {
                    if self.disk(&root_of_package).join("binding.gyp").is_file() {
                        return Resolved::Refused(format!(
                            "Package '{}' needs a native addon (it has a binding.gyp), which Roost cannot load; use a pure-JavaScript package instead.",
                            package_name(id)
                        ));
                    }
                    return self.file_or_dir(&candidate, package_name(id));
                }
            }
            if dir == "/" {
                return Resolved::NotFound;
            }
            dir = dir_of(&dir).to_string();
        }
    }

    fn file_or_dir(&self, path: &str, package: &str) -> Resolved {
        for candidate in [path.to_string(), format!("{path}.js"), format!("{path}.json"), format!("{path}.node")] {
            if self.disk(&candidate).is_file() {
                return self.load(&candidate, package);
            }
        }
        if self.disk(path).is_dir() {
            let manifest = self.disk(&format!("{path}/package.json"));
            let main = Some(manifest)
                .filter(|m| self.inside(m))
                .and_then(|m| std::fs::read_to_string(m).ok())
                .and_then(|t| serde_json::from_str::<Json>(&t).ok())
                .and_then(|j| j.get("main").and_then(Json::as_str).map(str::to_string));
            if let Some(main) = main {
                let m = normalize(&format!("{path}/{main}"));
                for candidate in [m.clone(), format!("{m}.js"), format!("{m}.json"), format!("{m}/index.js"), format!("{m}/index.json")] {
                    if self.disk(&candidate).is_file() {
                        return self.load(&candidate, package);
                    }
                }
            }
            for candidate in [format!("{path}/index.js"), format!("{path}/index.json"), format!("{path}/index.node")] {
                if self.disk(&candidate).is_file() {
                    return self.load(&candidate, package);
                }
            }
        }
        Resolved::NotFound
    }

    fn load(&self, path: &str, package: &str) -> Resolved {
        if path.ends_with(".node") {
            return Resolved::Refused(format!(
                "Package '{package}' needs a native addon ({path}), which Roost cannot load; use a pure-JavaScript package instead."
            ));
        }
        // A symlink (npm makes them for file: and link: dependencies) never leads out of the install.
        if !self.inside(&self.disk(path)) {
            return Resolved::Refused(format!("Package '{package}': {path} leads outside the package install, which Roost does not read."));
        }
        match std::fs::read_to_string(self.disk(path)) {
            Ok(text) => {
                let text = if path.ends_with(".json") {
                    format!("module.exports = {text};")
                } else if text.starts_with("#!") {
                    // A shebang line is not JavaScript inside the CommonJS wrapper.
                    format!("//{text}")
                } else {
                    text
                };
                Resolved::Found { path: path.to_string(), text: Arc::from(text), key: Arc::from(format!("{}{path}", self.base.display())) }
            }
            Err(e) => Resolved::Refused(format!("Package '{package}': reading {path}: {e}")),
        }
    }
}

fn package_name(id: &str) -> &str {
    let end = if id.starts_with('@') { id.match_indices('/').nth(1).map(|(i, _)| i) } else { id.find('/') };
    &id[..end.unwrap_or(id.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_required_packages() {
        let text = "var a = require('async'), _ = require( \"underscore\" ); require('./x'); require('../shared/y'); require('@s/p/deep'); require('xml2js/lib/x'); requireX('no');";
        assert_eq!(required_packages(text), vec!["async", "underscore", "@s/p", "xml2js"]);
    }

    #[test]
    fn adds_only_undeclared_bundled_packages() {
        let mut m = parse_manifest(r#"{"name":"svc","dependencies":{"async":"^2.0.0"}}"#).unwrap();
        let added = add_bundled(&mut m, ["require('async'); require('xml2js'); require('left-pad');"].into_iter());
        assert_eq!(added, vec![("xml2js".to_string(), "^0.2.8".to_string())]);
        assert_eq!(dependencies(&m).get("async").map(String::as_str), Some("^2.0.0"));
        assert!(parse_manifest("[]").is_err());
        assert!(parse_manifest(r#"{"dependencies":{"Bad Name":"1"}}"#).is_err());
        assert!(parse_manifest(r#"{"dependencies":{"ok":1}}"#).is_err());
    }

    #[test]
    fn prunes_installs_no_tenant_uses() {
        let root = std::env::temp_dir().join(format!("roost-prune-{}", uuid::Uuid::new_v4().simple()));
        for d in ["aaa", "bbb", "staging-1"] {
            std::fs::create_dir_all(root.join(d).join("node_modules")).unwrap();
        }
        assert!(prune(&root, &["aaa".to_string()], Duration::from_secs(3600)).is_empty(), "young folders stay");
        let mut removed = prune(&root, &["aaa".to_string()], Duration::ZERO);
        removed.sort();
        assert_eq!(removed, vec!["bbb", "staging-1"]);
        assert!(root.join("aaa").is_dir());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn resolves_the_node_way() {
        let base = std::env::temp_dir().join(format!("roost-resolver-{}", uuid::Uuid::new_v4().simple()));
        let w = |p: &str, t: &str| {
            let f = base.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, t).unwrap();
        };
        w("node_modules/a/package.json", r#"{"main":"lib/main"}"#);
        w("node_modules/a/lib/main.js", "module.exports = require('./util');");
        w("node_modules/a/lib/util.js", "exports.u = 1;");
        w("node_modules/a/node_modules/b/index.js", "exports.nested = true;");
        w("node_modules/b/index.js", "exports.top = true;");
        w("node_modules/c/data.json", r#"{"x":1}"#);
        w("node_modules/native/binding.gyp", "{}");
        w("node_modules/native/index.js", "");
        w("node_modules/addon/index.node", "");
        let r = Resolver::new(base.clone());
        let found = |from: &str, id: &str| match r.resolve(from, id) {
            Resolved::Found { path, .. } => path,
            other => format!("{other:?}"),
        };
        assert_eq!(found("/table/t.insert.js", "a"), "/node_modules/a/lib/main.js");
        assert_eq!(found("/node_modules/a/lib/main.js", "./util"), "/node_modules/a/lib/util.js");
        assert_eq!(found("/node_modules/a/lib/main.js", "b"), "/node_modules/a/node_modules/b/index.js");
        assert_eq!(found("/api/x.js", "b"), "/node_modules/b/index.js");
        assert_eq!(found("/api/x.js", "c/data.json"), "/node_modules/c/data.json");
        assert!(matches!(r.resolve("/api/x.js", "c/data"), Resolved::Found { text, .. } if text.starts_with("module.exports = {")));
        assert_eq!(r.resolve("/api/x.js", "missing"), Resolved::NotFound);
        assert_eq!(r.resolve("/api/x.js", "./local"), Resolved::NotFound);
        assert!(matches!(r.resolve("/api/x.js", "native"), Resolved::Refused(m) if m.contains("'native'") && m.contains("binding.gyp")));
        assert!(matches!(r.resolve("/api/x.js", "addon"), Resolved::Refused(m) if m.contains("'addon'") && m.contains("native addon")));
        // `..` never leaves the install.
        assert_eq!(r.resolve("/node_modules/a/lib/main.js", "../../../../../etc/passwd"), Resolved::NotFound);
        // Nor does a symlink, to a folder or to a file.
        std::os::unix::fs::symlink("/etc", base.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(base.join("node_modules/y")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", base.join("node_modules/y/index.js")).unwrap();
        let r = Resolver::new(base.clone());
        assert!(matches!(r.resolve("/api/x.js", "x/hostname"), Resolved::Refused(m) if m.contains("outside")), "{:?}", r.resolve("/api/x.js", "x/hostname"));
        assert!(matches!(r.resolve("/api/x.js", "y"), Resolved::Refused(m) if m.contains("outside")));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn only_registry_dependencies_are_accepted() {
        for ok in [
            "^1.2.0",
            "1.2.3",
            "~1.2",
            "latest",
            "next",
            "*",
            "",
            ">=1.0.0 <2",
            "1.x || 2.x",
            "npm:underscore@^1.13.0",
            "npm:@types/node@20",
            "npm:left-pad",
            "1.0.0-beta.1+build",
        ] {
            assert!(registry_spec(ok), "{ok}");
        }
        for bad in [
            "file:/etc",
            "file:../..",
            "link:../x",
            "git+https://github.com/a/b.git",
            "git://x/y",
            "github:a/b",
            "a/b",
            "http://127.0.0.1:9/x.tgz",
            "https://x/y.tgz",
            "workspace:*",
            "../x",
            "./x",
            "/etc",
            "~/x",
            ".",
            "npm:x@file:/etc",
            "npm:../x",
            "1.0.0#sha",
            "x@1",
        ] {
            assert!(!registry_spec(bad), "{bad}");
            let m = format!(r#"{{"dependencies":{{"x":{}}}}}"#, Json::String(bad.into()));
            let e = parse_manifest(&m).unwrap_err().to_string();
            assert!(e.contains("'x'") && e.contains("not from the npm registry"), "{e}");
        }
        // npm reads only the dependencies.
        let m =
            parse_manifest(r#"{"dependencies":{"a":"^1"},"devDependencies":{"d":"file:/etc"},"workspaces":["../.."],"overrides":{"a":"file:/x"}}"#).unwrap();
        let given: Json = serde_json::from_str(&npm_manifest(&m)).unwrap();
        assert_eq!(given, serde_json::json!({"name": "roost-tenant-packages", "version": "0.0.0", "private": true, "dependencies": {"a": "^1"}}));
    }
}
