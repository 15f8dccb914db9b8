//! Configuration: the embedded `roost.default.toml` (defaults and documentation), then `roost.toml`,
//! then `ROOST_*` environment variables, then command-line flags; validated once at load.

pub use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The commented defaults, printed by `roost default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("../roost.default.toml");

/// The embedded defaults as a table: its keys are the settings there are.
fn default_table() -> toml::Table {
    toml::from_str(DEFAULT_CONFIG).unwrap_or_else(|e| panic!("roost.default.toml is invalid: {e}"))
}

/// Validated configuration. Its one list of settings is `roost.default.toml`: every key there is a
/// field here (serde refuses a missing or an extra one, and a test loads the defaults), the file,
/// `ROOST_*` variables and flags may set only those keys, and the `tenant_max_*` keys fill
/// [`TenantMaxima`]. Adding a server setting is a documented entry in that file and a field here.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address of `roost serve`.
    pub listen: String,
    /// Data folder.
    pub data: PathBuf,
    /// PostgreSQL URL (it may carry a password), or empty for SQLite.
    pub database_url: SecretString,
    /// PostgreSQL pool size.
    pub pg_max_connections: u32,
    /// Platform admin token (empty: generated).
    pub admin_token: SecretString,
    /// The key sealing identity-provider secrets (64 hex digits; empty: generated into the data folder).
    pub identity_key: SecretString,
    /// Facebook Login's OAuth dialog.
    pub facebook_dialog_url: String,
    /// Facebook's Graph API (no trailing slash).
    pub facebook_graph_url: String,
    /// Push registrations one tenant may hold.
    pub push_max_registrations: u64,
    /// The contact (VAPID `sub`) Web Push requests name.
    pub push_contact: String,
    /// How long a claim on queued notifications holds.
    pub push_claim_lease_ms: u64,
    /// FCM's API (no trailing slash).
    pub push_fcm_url: String,
    /// The OAuth 2.0 token endpoint of FCM's service accounts.
    pub push_oauth_token_url: String,
    /// APNs' provider API, production (no trailing slash).
    pub push_apns_url: String,
    /// APNs' provider API, sandbox (no trailing slash).
    pub push_apns_sandbox_url: String,
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
    /// Folder of scheduled backups (empty: none).
    pub backup_dir: PathBuf,
    /// Hours between scheduled backups of each tenant.
    pub backup_every_hours: u64,
    /// Scheduled archives kept per tenant.
    pub backup_keep: u64,
    /// After SIGTERM, how long the node keeps serving with `/readyz` at 503 before it stops accepting.
    pub drain_delay_ms: u64,
    /// Folder of the built portal, served at `/portal/`.
    pub portal_dir: PathBuf,
    /// `Secure` on the session cookie.
    pub secure_cookies: bool,
    /// Portal session idle timeout in minutes.
    pub session_idle_minutes: u64,
    /// Listen address of the portal and `/manage/v1` on their own origin (empty: the main listener
    /// serves them beside the tenants).
    pub manage_listen: String,
    /// The npm registry tenants' packages are installed from.
    pub npm_registry: String,
    /// The ceilings on tenant limits (the `tenant_max_*` settings).
    pub tenant_max: TenantMaxima,
    /// Count metrics, enforce rates and quotas.
    pub metrics: bool,
    /// How often a node writes its running totals to the catalog, in milliseconds.
    pub metrics_flush_ms: u64,
    /// How long minute rows are kept, in days.
    pub metrics_minute_days: u64,
    /// How long hour rows and device sketches are kept, in days.
    pub metrics_hour_days: u64,
    /// The bearer token of `GET /metrics` (empty: the route is off).
    pub metrics_token: SecretString,
    /// A listener serving only `/metrics` (empty: none).
    pub metrics_listen: String,
    /// Tenants with their own `tenant` label.
    pub metrics_max_tenants: u64,
    /// The tier of tenants no admin put on one.
    pub default_tier: String,
    /// The named tiers.
    pub tiers: std::collections::BTreeMap<String, roost_api::Tier>,
}

/// The prefix of the settings that fill [`TenantMaxima`].
const TENANT_MAX: &str = "tenant_max_";

/// Declares the platform's ceilings on tenant limits once: each entry is a numeric tenant setting,
/// the suffix of its `tenant_max_*` server setting and the least value the setting accepts.
macro_rules! tenant_limits {
    ($( $name:ident ($key:literal) >= $least:expr ),* $(,)?) => {
        /// The platform's ceilings on tenant limits (server configuration, never a tenant setting): a
        /// tenant's settings may lower a limit, never raise it past these. The script and request limits are
        /// also clamped to them where they are used, so a stored value above a ceiling lowered later is not
        /// obeyed either.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct TenantMaxima {
            $(
                #[doc = concat!("The ceiling of [`roost_api::TenantSettings::", stringify!($name), "`] (`tenant_max_", $key, "`).")]
                #[serde(rename = $key)]
                pub $name: u64,
            )*
        }

        impl TenantMaxima {
            /// The settings with every limit lowered to its ceiling.
            pub fn clamp(&self, s: &mut roost_api::TenantSettings) {
                $( s.$name = s.$name.min(self.$name); )*
            }

            /// Each limit of `s` as (setting name, value, least allowed, ceiling): the one table that both the
            /// settings checks and the configuration checks read.
            pub fn bounds(&self, s: &roost_api::TenantSettings) -> Vec<(&'static str, u64, u64, u64)> {
                vec![$( (stringify!($name), s.$name, $least, self.$name), )*]
            }
        }
    };
}

tenant_limits! {
    script_cpu_ms("script_cpu_ms") >= 10,
    script_memory_mb("script_memory_mb") >= 8,
    script_max_concurrent("script_max_concurrent") >= 1,
    request_timeout_ms("request_timeout_ms") >= 100,
    max_body_kb("body_kb") >= 1,
    packages_install_seconds("packages_install_seconds") >= 5,
    packages_max_mb("packages_mb") >= 1,
    login_token_days("login_token_days") >= 1,
    log_retention_days("log_retention_days") >= 1,
    log_max_mb("log_mb") >= 1,
}

impl Config {
    /// The embedded defaults alone (no file, no environment).
    pub fn defaults() -> Self {
        // The defaults are part of this binary; a test checks that they parse and validate.
        Self::from_table(default_table()).unwrap_or_else(|e| panic!("roost.default.toml is invalid: {e}"))
    }

    /// The ceilings on tenant limits.
    pub fn tenant_maxima(&self) -> TenantMaxima {
        self.tenant_max
    }

    /// The typed form of a flat table of settings (the `tenant_max_*` keys nest into `tenant_max`).
    fn from_table(mut table: toml::Table) -> anyhow::Result<Self> {
        let keys: Vec<String> = table.keys().filter(|k| k.starts_with(TENANT_MAX)).cloned().collect();
        let limits: toml::Table = keys.into_iter().filter_map(|k| table.remove(&k).map(|v| (k[TENANT_MAX.len()..].to_string(), v))).collect();
        table.insert("tenant_max".into(), toml::Value::Table(limits));
        Ok(toml::Value::Table(table).try_into()?)
    }

    /// Loads defaults, the config file (`file`, else `ROOST_CONFIG`, else `./roost.toml` if present)
    /// and the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut table = default_table();
        let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os("ROOST_CONFIG").map(PathBuf::from));
        let file = file.or_else(|| Some(PathBuf::from("roost.toml")).filter(|p| p.exists()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let overrides: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for (k, v) in overrides {
                if !table.contains_key(&k) {
                    anyhow::bail!("{}: unknown setting `{k}` (see `roost default-config`)", path.display());
                }
                // `[tiers.<name>]` replaces or adds one tier; the other default tiers stay.
                if let (Some(toml::Value::Table(tiers)), toml::Value::Table(given)) = (table.get_mut(&k).filter(|_| k == "tiers"), &v) {
                    for (name, tier) in given {
                        tiers.insert(name.clone(), tier.clone());
                    }
                    continue;
                }
                table.insert(k, v);
            }
        }
        let keys: Vec<String> = table.keys().cloned().collect();
        for key in keys {
            let var = format!("ROOST_{}", key.to_ascii_uppercase());
            if let Ok(v) = std::env::var(&var) {
                let value = match table.get(&key) {
                    Some(toml::Value::Table(_)) => anyhow::bail!("{var}: `{key}` is a table; set it in roost.toml"),
                    Some(toml::Value::Boolean(_)) => toml::Value::Boolean(matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")),
                    Some(toml::Value::Integer(_)) => toml::Value::Integer(v.parse().map_err(|_| anyhow::anyhow!("{var} must be an integer"))?),
                    _ => toml::Value::String(v),
                };
                table.insert(key, value);
            }
        }
        let config = Self::from_table(table)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("listen = {:?}: {e}", self.listen))?;
        let url = self.database_url.expose_secret();
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
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
        for (key, url) in [
            ("facebook_dialog_url", &self.facebook_dialog_url),
            ("facebook_graph_url", &self.facebook_graph_url),
            ("push_fcm_url", &self.push_fcm_url),
            ("push_oauth_token_url", &self.push_oauth_token_url),
            ("push_apns_url", &self.push_apns_url),
            ("push_apns_sandbox_url", &self.push_apns_sandbox_url),
        ] {
            let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("{key} = {url:?}: {e}"))?;
            let host = parsed.host_str().unwrap_or_default().trim_matches(|c| c == '[' || c == ']');
            if !(parsed.scheme() == "https" || parsed.scheme() == "http" && crate::identity::is_loopback_host(host)) || url.ends_with('/') {
                anyhow::bail!("{key} must be an https:// URL (http:// only to a loopback host), without a trailing /: {url:?}");
            }
        }
        if self.push_claim_lease_ms < 1000 {
            anyhow::bail!("push_claim_lease_ms must be at least 1000");
        }
        if !(self.push_contact.starts_with("mailto:") || self.push_contact.starts_with("https://")) || self.push_contact.len() > 256 {
            anyhow::bail!("push_contact must be a mailto: or https: URL: {:?}", self.push_contact);
        }
        if !self.manage_listen.is_empty() {
            self.manage_listen.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("manage_listen = {:?}: {e}", self.manage_listen))?;
        }
        if self.metrics_flush_ms < 100 || self.metrics_flush_ms > 60_000 {
            anyhow::bail!("metrics_flush_ms must be between 100 and 60000");
        }
        if self.metrics_minute_days == 0 || self.metrics_hour_days == 0 {
            anyhow::bail!("metrics_minute_days and metrics_hour_days must be at least 1");
        }
        if !self.metrics_listen.is_empty() {
            self.metrics_listen.parse::<SocketAddr>().map_err(|e| anyhow::anyhow!("metrics_listen = {:?}: {e}", self.metrics_listen))?;
        }
        if !self.tiers.contains_key(&self.default_tier) {
            anyhow::bail!("default_tier = {:?} names no [tiers.*] table", self.default_tier);
        }
        for (name, t) in &self.tiers {
            if !crate::monitor::tiers::valid_name(name) {
                anyhow::bail!("[tiers.{name}]: a tier's name is 1 to 32 of a-z, 0-9, - and _");
            }
            if t.requests_per_second == 0 || t.burst == 0 {
                anyhow::bail!("[tiers.{name}]: requests_per_second and burst must be at least 1");
            }
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
            database_url: Some(self.database_url.expose_secret().to_string()).filter(|u| !u.is_empty()),
            pg_max_connections: self.pg_max_connections,
            listen_for_changes,
            // The platform ceiling of request timeouts bounds every statement (tenants may set less).
            statement_timeout_ms: self.tenant_max.request_timeout_ms,
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

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut c = Config::defaults();
        c.admin_token = "platform-secret-token".into();
        c.database_url = "postgres://roost:db-password@127.0.0.1/roost".into();
        let shown = format!("{c:?}");
        assert!(!shown.contains("platform-secret-token") && !shown.contains("db-password"), "{shown}");
        assert!(shown.contains("tenant_max") && shown.contains("npm_registry"), "{shown}");
    }

    #[test]
    fn every_default_setting_is_a_field_and_the_limits_nest() {
        // `deny_unknown_fields` and no `serde(default)`: a key of the defaults without a field, or a
        // field without a key, fails here.
        let c = Config::defaults();
        let table = default_table();
        assert_eq!(table.get("tenant_max_body_kb").and_then(|v| v.as_integer()), Some(c.tenant_max.max_body_kb as i64));
        assert_eq!(table.get("tenant_max_packages_mb").and_then(|v| v.as_integer()), Some(c.tenant_max.packages_max_mb as i64));
        assert_eq!(c.tenant_maxima().bounds(&roost_api::TenantSettings::default()).len(), table.keys().filter(|k| k.starts_with(TENANT_MAX)).count());
    }
}
