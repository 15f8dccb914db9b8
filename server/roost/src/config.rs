//! Configuration: the embedded `roost.default.toml` (defaults and documentation), then `roost.toml`,
//! then `ROOST_*` environment variables, then command-line flags; validated once at load.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The commented defaults, printed by `roost default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("../roost.default.toml");

/// Validated configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address of `roost serve`.
    pub listen: String,
    /// Data folder.
    pub data: PathBuf,
    /// PostgreSQL URL, or empty for SQLite.
    pub database_url: String,
    /// PostgreSQL pool size.
    pub pg_max_connections: u32,
    /// Platform admin token (empty: generated).
    pub admin_token: String,
    /// Domain for `{tenant}.{domain}` addressing.
    pub tenant_domain: String,
    /// Honour `X-Forwarded-Proto`.
    pub trust_forwarded_proto: bool,
    /// Log filter.
    pub log: String,
    /// How often the scheduler looks for due jobs, in milliseconds; 0 turns it off on this node.
    pub scheduler_tick_ms: u64,
    /// How long `roost serve` waits, after SIGTERM or Ctrl-C, for in-flight requests and job runs.
    pub shutdown_grace_ms: u64,
    /// Folder of the built portal, served at `/portal/`.
    pub portal_dir: PathBuf,
    /// `Secure` on the session cookie.
    pub secure_cookies: bool,
    /// Portal session idle timeout in minutes.
    pub session_idle_minutes: u64,
    /// Listen address of the portal and `/manage/v1` on their own origin (empty: the main listener
    /// serves them beside the tenants).
    pub manage_listen: String,
    /// Platform maximum of a tenant's `script_cpu_ms`.
    pub tenant_max_script_cpu_ms: u64,
    /// Platform maximum of a tenant's `script_memory_mb`.
    pub tenant_max_script_memory_mb: u64,
    /// Platform maximum of a tenant's `script_max_concurrent`.
    pub tenant_max_script_max_concurrent: u64,
    /// Platform maximum of a tenant's `request_timeout_ms`.
    pub tenant_max_request_timeout_ms: u64,
    /// Platform maximum of a tenant's `max_body_kb`.
    pub tenant_max_body_kb: u64,
    /// Platform maximum of a tenant's `packages_install_seconds`.
    pub tenant_max_packages_install_seconds: u64,
    /// Platform maximum of a tenant's `packages_max_mb`.
    pub tenant_max_packages_mb: u64,
    /// The npm registry tenants' packages are installed from.
    pub npm_registry: String,
}

/// The platform's ceilings on tenant limits (server configuration, never a tenant setting): a
/// tenant's settings may lower a limit, never raise it past these. The script and request limits are
/// also clamped to them where they are used, so a stored value above a ceiling lowered later is not
/// obeyed either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantMaxima {
    /// See [`roost_api::TenantSettings::script_cpu_ms`].
    pub script_cpu_ms: u64,
    /// See [`roost_api::TenantSettings::script_memory_mb`].
    pub script_memory_mb: u64,
    /// See [`roost_api::TenantSettings::script_max_concurrent`].
    pub script_max_concurrent: u64,
    /// See [`roost_api::TenantSettings::request_timeout_ms`].
    pub request_timeout_ms: u64,
    /// See [`roost_api::TenantSettings::max_body_kb`].
    pub max_body_kb: u64,
    /// See [`roost_api::TenantSettings::packages_install_seconds`].
    pub packages_install_seconds: u64,
    /// See [`roost_api::TenantSettings::packages_max_mb`].
    pub packages_max_mb: u64,
}

impl TenantMaxima {
    /// The settings with every limit lowered to its ceiling.
    pub fn clamp(&self, s: &mut roost_api::TenantSettings) {
        s.script_cpu_ms = s.script_cpu_ms.min(self.script_cpu_ms);
        s.script_memory_mb = s.script_memory_mb.min(self.script_memory_mb);
        s.script_max_concurrent = s.script_max_concurrent.min(self.script_max_concurrent);
        s.request_timeout_ms = s.request_timeout_ms.min(self.request_timeout_ms);
        s.max_body_kb = s.max_body_kb.min(self.max_body_kb);
        s.packages_install_seconds = s.packages_install_seconds.min(self.packages_install_seconds);
        s.packages_max_mb = s.packages_max_mb.min(self.packages_max_mb);
    }
}

impl TenantMaxima {
    /// Each limit of `s` as (setting name, value, least allowed, ceiling): the one table that both the
    /// settings checks and the configuration checks read.
    pub fn bounds(&self, s: &roost_api::TenantSettings) -> [(&'static str, u64, u64, u64); 7] {
        [
            ("script_cpu_ms", s.script_cpu_ms, 10, self.script_cpu_ms),
            ("script_memory_mb", s.script_memory_mb, 8, self.script_memory_mb),
            ("script_max_concurrent", s.script_max_concurrent, 1, self.script_max_concurrent),
            ("request_timeout_ms", s.request_timeout_ms, 100, self.request_timeout_ms),
            ("max_body_kb", s.max_body_kb, 1, self.max_body_kb),
            ("packages_install_seconds", s.packages_install_seconds, 5, self.packages_install_seconds),
            ("packages_max_mb", s.packages_max_mb, 1, self.packages_max_mb),
        ]
    }
}

impl fmt::Debug for Config {
    // Secrets and DSNs (which may carry passwords) are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("database_url", &if self.database_url.is_empty() { "" } else { "<redacted>" })
            .field("pg_max_connections", &self.pg_max_connections)
            .field("admin_token", &if self.admin_token.is_empty() { "" } else { "<redacted>" })
            .field("tenant_domain", &self.tenant_domain)
            .field("trust_forwarded_proto", &self.trust_forwarded_proto)
            .field("log", &self.log)
            .field("scheduler_tick_ms", &self.scheduler_tick_ms)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("portal_dir", &self.portal_dir)
            .field("secure_cookies", &self.secure_cookies)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("manage_listen", &self.manage_listen)
            .field("npm_registry", &self.npm_registry)
            .field("tenant_maxima", &self.tenant_maxima())
            .finish()
    }
}

const KEYS: &[&str] = &[
    "listen",
    "data",
    "database_url",
    "pg_max_connections",
    "admin_token",
    "tenant_domain",
    "trust_forwarded_proto",
    "log",
    "scheduler_tick_ms",
    "shutdown_grace_ms",
    "portal_dir",
    "secure_cookies",
    "session_idle_minutes",
    "manage_listen",
    "tenant_max_script_cpu_ms",
    "tenant_max_script_memory_mb",
    "tenant_max_script_max_concurrent",
    "tenant_max_request_timeout_ms",
    "tenant_max_body_kb",
    "tenant_max_packages_install_seconds",
    "tenant_max_packages_mb",
    "npm_registry",
];

impl Config {
    /// The embedded defaults alone (no file, no environment).
    pub fn defaults() -> Self {
        // The defaults are part of this binary; a test checks that they parse and validate.
        toml::from_str(DEFAULT_CONFIG).unwrap_or_else(|e| panic!("roost.default.toml is invalid: {e}"))
    }

    /// The ceilings on tenant limits.
    pub fn tenant_maxima(&self) -> TenantMaxima {
        TenantMaxima {
            script_cpu_ms: self.tenant_max_script_cpu_ms,
            script_memory_mb: self.tenant_max_script_memory_mb,
            script_max_concurrent: self.tenant_max_script_max_concurrent,
            request_timeout_ms: self.tenant_max_request_timeout_ms,
            max_body_kb: self.tenant_max_body_kb,
            packages_install_seconds: self.tenant_max_packages_install_seconds,
            packages_max_mb: self.tenant_max_packages_mb,
        }
    }

    /// Loads defaults, the config file (`file`, else `ROOST_CONFIG`, else `./roost.toml` if present)
    /// and the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut table: toml::Table = toml::from_str(DEFAULT_CONFIG)?;
        let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os("ROOST_CONFIG").map(PathBuf::from));
        let file = file.or_else(|| Some(PathBuf::from("roost.toml")).filter(|p| p.exists()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let overrides: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for (k, v) in overrides {
                if !KEYS.contains(&k.as_str()) {
                    anyhow::bail!("{}: unknown setting `{k}` (see `roost default-config`)", path.display());
                }
                table.insert(k, v);
            }
        }
        for key in KEYS {
            let var = format!("ROOST_{}", key.to_ascii_uppercase());
            if let Ok(v) = std::env::var(&var) {
                let value = match table.get(*key) {
                    Some(toml::Value::Boolean(_)) => toml::Value::Boolean(matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")),
                    Some(toml::Value::Integer(_)) => toml::Value::Integer(v.parse().map_err(|_| anyhow::anyhow!("{var} must be an integer"))?),
                    _ => toml::Value::String(v),
                };
                table.insert(key.to_string(), value);
            }
        }
        let config: Config = toml::Value::Table(table).try_into()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("listen = {:?}: {e}", self.listen))?;
        if !self.database_url.is_empty() && !self.database_url.starts_with("postgres://") && !self.database_url.starts_with("postgresql://") {
            anyhow::bail!("database_url must be empty (SQLite) or a postgres:// URL");
        }
        if self.session_idle_minutes == 0 {
            anyhow::bail!("session_idle_minutes must be at least 1");
        }
        if self.pg_max_connections == 0 {
            anyhow::bail!("pg_max_connections must be at least 1");
        }
        if !self.npm_registry.starts_with("https://") && !self.npm_registry.starts_with("http://") {
            anyhow::bail!("npm_registry must be an http(s) URL");
        }
        if !self.manage_listen.is_empty() {
            self.manage_listen.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("manage_listen = {:?}: {e}", self.manage_listen))?;
        }
        // No ceiling below the lowest value its limit accepts.
        for (name, _, least, ceiling) in self.tenant_maxima().bounds(&roost_api::TenantSettings::default()) {
            if ceiling < least {
                anyhow::bail!("the ceiling of {name} (tenant_max_…) must be at least {least}");
            }
        }
        Ok(())
    }

    /// The storage settings this configuration implies.
    pub fn storage(&self, listen_for_changes: bool) -> roost_storage::StorageConfig {
        roost_storage::StorageConfig {
            data_dir: self.data.clone(),
            database_url: (!self.database_url.is_empty()).then(|| self.database_url.clone()),
            pg_max_connections: self.pg_max_connections,
            listen_for_changes,
            // The platform ceiling of request timeouts bounds every statement (tenants may set less).
            statement_timeout_ms: self.tenant_max_request_timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_parse_and_validate() {
        let c = Config::defaults();
        c.validate().expect("valid defaults");
        // The default tenant settings are within the default ceilings.
        let mut s = roost_api::TenantSettings::default();
        let before = s.clone();
        c.tenant_maxima().clamp(&mut s);
        assert_eq!(s, before);
    }
}
