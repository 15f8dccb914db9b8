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
    /// Folder of the built portal, served at `/portal/`.
    pub portal_dir: PathBuf,
    /// `Secure` on the session cookie.
    pub secure_cookies: bool,
    /// Portal session idle timeout in minutes.
    pub session_idle_minutes: u64,
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
            .field("portal_dir", &self.portal_dir)
            .field("secure_cookies", &self.secure_cookies)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .finish()
    }
}

const KEYS: &[&str] = &["listen", "data", "database_url", "pg_max_connections", "admin_token", "tenant_domain", "trust_forwarded_proto", "log", "scheduler_tick_ms", "portal_dir", "secure_cookies", "session_idle_minutes"];

impl Config {
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
        Ok(())
    }

    /// The storage settings this configuration implies.
    pub fn storage(&self, listen_for_changes: bool) -> roost_storage::StorageConfig {
        roost_storage::StorageConfig {
            data_dir: self.data.clone(),
            database_url: (!self.database_url.is_empty()).then(|| self.database_url.clone()),
            pg_max_connections: self.pg_max_connections,
            listen_for_changes,
        }
    }
}
