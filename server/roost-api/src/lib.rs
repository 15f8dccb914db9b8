//! Wire types of the `/manage/v1` API and the settings they carry, shared by the server, the CLI and
//! (later) the portal. Serde only: this crate must compile to wasm32.

use serde::{Deserialize, Serialize};

/// Who may perform a table operation (protocol.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Anyone.
    Public,
    /// Callers with the application key (or master key).
    #[default]
    Application,
    /// Callers with a valid user token (or master key); `authenticated` is a synonym.
    #[serde(alias = "authenticated")]
    User,
    /// The master key only.
    Admin,
}

impl Permission {
    /// Parses `public|application|user|authenticated|admin`, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "public" => Self::Public,
            "application" => Self::Application,
            "user" | "authenticated" => Self::User,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Application => "application",
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// The permission of each table operation; each defaults to `application`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TablePermissions {
    /// `POST /tables/t` and undelete.
    pub insert: Permission,
    /// `GET`.
    pub read: Permission,
    /// `PATCH`.
    pub update: Permission,
    /// `DELETE`.
    pub delete: Permission,
}

impl TablePermissions {
    /// The table operations by their names (the names of their scripts, `<table>.<name>.js`).
    pub const OPERATIONS: [&'static str; 4] = ["insert", "read", "update", "delete"];

    /// The permission of the operation named `op` (any case): the one place an operation's name is read.
    pub fn by_name_mut(&mut self, op: &str) -> Option<&mut Permission> {
        match op.to_ascii_lowercase().as_str() {
            "insert" => Some(&mut self.insert),
            "read" => Some(&mut self.read),
            "update" => Some(&mut self.update),
            "delete" => Some(&mut self.delete),
            _ => None,
        }
    }

    /// Applies a `insert=P,read=P,update=P,delete=P` list (any subset; `*=P` sets all four).
    pub fn apply_spec(&mut self, spec: &str) -> Result<(), String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (op, level) = part.split_once('=').ok_or_else(|| format!("'{part}' is not of the form operation=permission"))?;
            let level = Permission::parse(level.trim()).ok_or_else(|| format!("'{}' is not a permission (public, application, user, admin)", level.trim()))?;
            match op.trim() {
                "*" => *self = Self { insert: level, read: level, update: level, delete: level },
                other => {
                    *self
                        .by_name_mut(other)
                        .ok_or_else(|| format!("'{}' is not a table operation (insert, read, update, delete)", other.to_ascii_lowercase()))? = level
                }
            }
        }
        Ok(())
    }
}

/// Declares the tenant settings once: the settings with their defaults, the partial update of them
/// and its application. Adding a tenant setting is one entry here (then, if it is a limit with a
/// platform ceiling, one in `roost::config`'s `tenant_limits!`; if the portal edits it, its form).
macro_rules! tenant_settings {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $default:expr, )*) => {
        /// A tenant's settings.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct TenantSettings {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        impl Default for TenantSettings {
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        /// A partial update of [`TenantSettings`]: each member given replaces that setting.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct TenantSettingsPatch {
            $( $(#[$doc])* #[serde(default)] pub $name: Option<$ty>, )*
        }

        impl TenantSettings {
            /// Applies a partial update.
            pub fn apply(&mut self, patch: &TenantSettingsPatch) {
                $( if let Some(v) = &patch.$name { self.$name = v.clone(); } )*
            }
        }
    };
}

tenant_settings! {
    /// Dynamic schema (§2.8): unknown members become columns.
    dynamic_schema: bool = true,
    /// CORS host patterns (§1.5); default `["localhost"]`.
    cors_origins: Vec<String> = vec!["localhost".into()],
    /// Request body limit in KiB (§1.6); default 1024.
    max_body_kb: u64 = 1024,
    /// Request timeout in milliseconds (§1.7); default 30000.
    request_timeout_ms: u64 = 30_000,
    /// Refuse plain-HTTP requests with 403 (`MS_RequireHttps`, §1.1 step 1); default false.
    require_https: bool = false,
    /// CPU time one script invocation may use, in milliseconds (R9); default 1000.
    script_cpu_ms: u64 = 1_000,
    /// Memory of the tenant's script runtime, in MiB (R9); default 64.
    script_memory_mb: u64 = 64,
    /// Script invocations of the tenant that may run at once; default 32.
    script_max_concurrent: u64 = 32,
    /// App settings: `process.env` and `mobileservice-config`'s `appSettings` (§6.9, §6.13); a patch
    /// replaces them all.
    app_settings: std::collections::BTreeMap<String, String> = Default::default(),
    /// Hosts (or `host:port`) that `require('request')` may reach even on loopback or private
    /// addresses, which are refused otherwise.
    outbound_allow: Vec<String> = Vec::new(),
    /// How long npm may take to install the tenant's packages, in seconds.
    packages_install_seconds: u64 = 300,
    /// How much disk the tenant's installed packages may take, in MB.
    packages_max_mb: u64 = 200,
    /// How long the tokens of `/login/{provider}` are valid, in days (§5.3); default 30.
    login_token_days: u64 = 30,
    /// How long script and request log lines are kept, in days; default 7.
    log_retention_days: u64 = 7,
    /// How much log text (messages and sources) is kept, in MB; older lines go first; default 50.
    log_max_mb: u64 = 50,
}

/// `POST /manage/v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantIn {
    /// Tenant name: a letter, then letters, digits or `-`, at most 48.
    pub name: String,
    /// Optional initial settings.
    #[serde(default)]
    pub settings: Option<TenantSettings>,
}

/// A tenant as the management API and `roost tenant create --json` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantOut {
    /// Tenant name (lower case).
    pub name: String,
    /// `X-ZUMO-APPLICATION` key.
    pub application_key: String,
    /// `X-ZUMO-MASTER` key.
    pub master_key: String,
    /// Settings.
    pub settings: TenantSettings,
    /// Creation time (ISO-8601).
    pub created_at: String,
    /// Base URL path of the tenant's endpoints.
    pub url: String,
}

/// A tenant's key (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `X-ZUMO-APPLICATION`.
    Application,
    /// `X-ZUMO-MASTER`.
    Master,
}

impl KeyKind {
    /// The name in paths and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Application => "application",
            KeyKind::Master => "master",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "application" => Some(KeyKind::Application),
            "master" => Some(KeyKind::Master),
            _ => None,
        }
    }
}

/// `POST /manage/v1/tenants/{t}/keys/{kind}/regenerate` answers with the new key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyOut {
    /// Which key.
    pub kind: KeyKind,
    /// The new key.
    pub key: String,
}

/// The kind of a table's `id` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    /// String ids with system properties (default).
    #[default]
    String,
    /// Legacy integer identity ids, no system properties.
    Integer,
}

/// `POST /manage/v1/tenants/{t}/tables`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableIn {
    /// Table name (identifier rule of §2.2).
    pub name: String,
    /// Id kind; default string.
    #[serde(default)]
    pub id_kind: IdKind,
    /// Add `__deleted` (soft delete).
    #[serde(default)]
    pub soft_delete: bool,
    /// Operation permissions; default application for all.
    #[serde(default)]
    pub permissions: TablePermissions,
}

/// A column as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnOut {
    /// Stored name.
    pub name: String,
    /// `string`, `number`, `boolean`, `date`, `binary` or `integer`.
    #[serde(rename = "type")]
    pub ty: String,
    /// True for `id` and the `__` system columns.
    pub system: bool,
}

/// `POST /manage/v1/tenants/{t}/tables/{table}/columns`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnIn {
    /// Column name.
    pub name: String,
    /// `string`, `number`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A table as the management API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOut {
    /// Stored name.
    pub name: String,
    /// Id kind.
    pub id_kind: IdKind,
    /// Soft delete enabled.
    pub soft_delete: bool,
    /// Operation permissions.
    pub permissions: TablePermissions,
    /// Columns, in table order.
    pub columns: Vec<ColumnOut>,
    /// Columns Roost indexed automatically because queries filter or order on them.
    #[serde(default)]
    pub indexes: Vec<String>,
}

/// Error body of the management API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorOut {
    /// HTTP status.
    pub code: u16,
    /// Message.
    pub error: String,
    /// For a script syntax error: its 1-based line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// For a script syntax error: its 1-based column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// One permission entry of a metadata file (§5.2): `{"permission": "public"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionEntry {
    /// The level.
    pub permission: Permission,
}

/// A route of an API permissions file: one level for every verb, or one per verb (`get`, `post`,
/// `put`, `patch`, `delete`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoutePermissions {
    /// `{"permission": "…"}`
    All(PermissionEntry),
    /// `{"get": {"permission": "…"}, …}`
    Verbs(std::collections::BTreeMap<String, PermissionEntry>),
}

/// `api/<name>.json` (§5.2): permissions by route pattern (`*` for the rest). Without one, every
/// route needs the master key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiPermissions {
    /// Route pattern (as registered, e.g. `/title/:title`, or `*`) → permissions.
    pub routes: std::collections::BTreeMap<String, RoutePermissions>,
}

/// How often a scheduled job runs (R14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleUnit {
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Days.
    Day,
    /// Calendar months.
    Month,
}

/// A job's schedule (R14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSchedule {
    /// Every `interval` units (at least 1).
    pub interval: u32,
    /// The unit.
    pub unit: ScheduleUnit,
    /// First run (ISO-8601, UTC); runs are at `start + k·interval`. Default: when the schedule is saved.
    #[serde(default)]
    pub start: Option<String>,
    /// Runs only while enabled.
    #[serde(default)]
    pub enabled: bool,
}

/// A script to store: `PUT /manage/v1/tenants/{t}/scripts/{kind}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptIn {
    /// The JavaScript text.
    pub body: String,
    /// API scripts: route permissions (default: admin everywhere).
    #[serde(default)]
    pub permissions: Option<ApiPermissions>,
    /// Job scripts: the schedule (default: none, runs only when asked).
    #[serde(default)]
    pub schedule: Option<JobSchedule>,
}

/// A stored script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptOut {
    /// `table`, `api`, `job`, `shared` or `extension`.
    pub kind: String,
    /// `todo.insert`, `movies`, `cleanup`, `util`, `startup`.
    pub name: String,
    /// Its path in the Mobile Services layout: `/table/todo.insert.js`.
    pub path: String,
    /// The JavaScript text.
    pub body: String,
    /// Last change (ISO-8601).
    pub updated_at: String,
    /// API permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<ApiPermissions>,
    /// Job schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<JobSchedule>,
}

/// A script log line's level (§6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `console.log`, `console.info`.
    Information,
    /// `console.warn`.
    Warning,
    /// `console.error` and script failures.
    Error,
}

impl LogLevel {
    /// Every level, in order.
    pub const ALL: [LogLevel; 3] = [LogLevel::Information, LogLevel::Warning, LogLevel::Error];

    /// The protocol's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Information => "information",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }

    /// Parses a protocol name.
    pub fn parse(s: &str) -> Option<Self> {
        LogLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl TryFrom<String> for LogLevel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LogLevel::parse(&s).ok_or_else(|| format!("unknown log level '{s}'"))
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A script log line (§6.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogOut {
    /// Sequence number (pass the last one as `after` to page on).
    pub id: i64,
    /// `timeCreated` (ISO-8601).
    pub time: String,
    /// The level.
    pub level: LogLevel,
    /// The script path.
    pub source: String,
    /// The message.
    pub message: String,
}

/// How a job run ended; its wire and stored form is `succeeded` or `failed: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum JobOutcome {
    /// `done()` was called (or the job returned) without an error.
    Succeeded,
    /// It threw, called `done(error)`, timed out or was interrupted; the reason as shown.
    Failed(String),
}

impl JobOutcome {
    /// A failure with its reason.
    pub fn failed(reason: impl std::fmt::Display) -> Self {
        JobOutcome::Failed(reason.to_string())
    }
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobOutcome::Succeeded => f.write_str("succeeded"),
            JobOutcome::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

impl From<JobOutcome> for String {
    fn from(o: JobOutcome) -> String {
        o.to_string()
    }
}

impl From<String> for JobOutcome {
    fn from(s: String) -> Self {
        if s == "succeeded" {
            JobOutcome::Succeeded
        } else {
            JobOutcome::Failed(s.strip_prefix("failed: ").map(str::to_string).unwrap_or(s))
        }
    }
}

/// A job run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRunOut {
    /// Job name.
    pub job: String,
    /// The schedule time it ran for.
    pub due: String,
    /// Start time.
    pub started_at: String,
    /// `succeeded` or `failed: …`; absent while running.
    pub outcome: Option<JobOutcome>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
}

/// A platform account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// The tenants they created or were given.
    Owner,
    /// Read-only: tenant list, monitoring and logs of every tenant; never data, scripts, keys or settings.
    Support,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Support => "support",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            "support" => Role::Support,
            _ => return None,
        })
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Role::parse(&s).ok_or_else(|| format!("unknown role '{s}'"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOut {
    /// Id.
    pub id: String,
    /// Sign-in e-mail.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Creation time (ISO-8601).
    pub created_at: String,
}

/// `POST /manage/v1/accounts` (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountIn {
    /// Sign-in e-mail.
    pub email: String,
    /// Initial password (at least 10 characters).
    pub password: String,
    /// Role.
    pub role: Role,
}

/// `POST /manage/v1/session`: sign in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignInIn {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// The signed-in account and the CSRF token every state-changing call of this session must send
/// as `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionOut {
    /// Who is signed in.
    pub account: AccountOut,
    /// The session's CSRF token (absent for bearer-token callers, who need none).
    pub csrf_token: Option<String>,
}

/// `PUT /manage/v1/account/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordIn {
    /// The current password.
    pub current_password: String,
    /// The new password (at least 10 characters).
    pub new_password: String,
}

/// `POST /manage/v1/account/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiTokenIn {
    /// A name to recognise it by.
    pub name: String,
}

/// A personal API token; `token` (the secret) is present only in the answer that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenOut {
    /// Id (for revoking).
    pub id: String,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// Last use, if any.
    pub last_used_at: Option<String>,
    /// The secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `POST /manage/v1/tenants/{t}/owners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerIn {
    /// The e-mail of the account to make an owner.
    pub email: String,
}

/// A tenant in the list (no keys or settings: support staff see the list too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSummary {
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// Base URL path of the tenant's endpoints.
    pub url: String,
}

/// `GET /manage/v1/tenants/{t}/monitor`: what support staff watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorOut {
    /// Tenant name.
    pub name: String,
    /// Number of tables.
    pub tables: u64,
    /// Number of scripts (all kinds).
    pub scripts: u64,
    /// Jobs with their latest run.
    pub jobs: Vec<JobMonitor>,
    /// Log lines at each level among the newest 1000.
    pub recent_log_levels: Vec<(String, u64)>,
}

/// A job in [`MonitorOut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMonitor {
    /// Job name.
    pub name: String,
    /// Whether its schedule is enabled.
    pub enabled: bool,
    /// Its latest run.
    pub last_run: Option<JobRunOut>,
}

/// `GET /manage/v1/tenants/{t}/logs` query: `after` pages oldest first (live tail), `order=desc`
/// pages newest first with `before`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogQuery {
    /// Lines after this id.
    #[serde(default)]
    pub after: i64,
    /// Lines before this id.
    #[serde(default)]
    pub before: Option<i64>,
    /// Only this level (`information`, `warning`, `error`).
    #[serde(default)]
    pub level: Option<String>,
    /// Only sources containing this text.
    #[serde(default)]
    pub source: Option<String>,
    /// Only messages containing this text.
    #[serde(default)]
    pub q: Option<String>,
    /// Only lines at or after this time (ISO-8601).
    #[serde(default)]
    pub since: Option<String>,
    /// Only lines before this time (ISO-8601).
    #[serde(default)]
    pub until: Option<String>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub order: Option<String>,
    /// At most this many (1–1000, default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /manage/v1/tenants/{t}/packages`: the tenant's `package.json` and what its lock resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackagesOut {
    /// The `package.json` text (with any bundled packages Roost added).
    pub package_json: Option<String>,
    /// Installed top-level packages and their versions.
    pub resolved: std::collections::BTreeMap<String, String>,
    /// SHA-256 of the lock (the install every node uses).
    pub lock_hash: Option<String>,
    /// What Roost added (bundled packages that scripts require).
    #[serde(default)]
    pub added: Vec<String>,
}

/// `POST /manage/v1/tenants/{t}/tokens/revoke` answers when the tokens were revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedOut {
    /// ISO-8601.
    pub revoked_at: String,
}

/// What an identity provider is: a preset that fills the discovery URL and the Mobile Services name
/// (`uid` prefix), or any OpenID Connect issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Google (OpenID Connect).
    Google,
    /// Microsoft Account (personal accounts of the Microsoft identity platform).
    MicrosoftAccount,
    /// Microsoft Entra ID (any Entra tenant).
    Aad,
    /// Sign in with Apple.
    Apple,
    /// Facebook Login (OAuth 2.0 and its `/me` endpoint, as Mobile Services used it).
    Facebook,
    /// Any OpenID Connect issuer, by its discovery URL.
    Oidc,
}

impl ProviderKind {
    /// Every kind.
    pub const ALL: [ProviderKind; 6] =
        [ProviderKind::Google, ProviderKind::MicrosoftAccount, ProviderKind::Aad, ProviderKind::Apple, ProviderKind::Facebook, ProviderKind::Oidc];

    /// The name in the catalog and in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Google => "google",
            ProviderKind::MicrosoftAccount => "microsoftaccount",
            ProviderKind::Aad => "aad",
            ProviderKind::Apple => "apple",
            ProviderKind::Facebook => "facebook",
            ProviderKind::Oidc => "oidc",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `PUT /manage/v1/tenants/{t}/identity/providers/{name}`: a provider, created or replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderIn {
    /// The preset or `oidc` (default: the name when it is a preset's, else `oidc`).
    #[serde(default)]
    pub kind: Option<ProviderKind>,
    /// The issuer's discovery document (`…/.well-known/openid-configuration`); presets fill it.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret (write-only; omitted on a change: the stored one is kept).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes asked for beyond `openid` (default `profile email`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Other client ids accepted as an id token's audience (an iOS and a web client of one app).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `aad`: the Entra tenant ids whose users may sign in (`MS_AadTenants`); empty: any.
    #[serde(default)]
    pub entra_tenants: Vec<String>,
}

/// An identity provider as `/manage/v1` shows it: never the secret, only its last characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderOut {
    /// The name in `/login/{name}`.
    pub name: String,
    /// The preset or `oidc`.
    pub kind: ProviderKind,
    /// The provider name of user ids (`"<uid_prefix>:<subject>"`).
    pub uid_prefix: String,
    /// The discovery document's URL (none for Facebook).
    pub discovery_url: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub client_secret_set: bool,
    /// The stored secret's last four characters (`…abcd`), if one is stored.
    pub client_secret_hint: Option<String>,
    /// Scopes asked for beyond `openid`.
    pub scopes: Vec<String>,
    /// Other accepted audiences.
    pub audiences: Vec<String>,
    /// `aad`: the Entra tenant ids whose users may sign in; empty: any.
    #[serde(default)]
    pub entra_tenants: Vec<String>,
    /// The server-directed login URL, below the tenant's base.
    pub login_path: String,
    /// ISO-8601.
    pub updated_at: String,
}

/// `PUT /manage/v1/tenants/{t}/push/fcm`: FCM HTTP v1 credentials, a Google service account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmCredentialsIn {
    /// The service account's JSON key file, as Google gives it (`project_id`, `client_email`,
    /// `private_key`; write-only).
    pub service_account: String,
}

/// The FCM credentials as `/manage/v1` shows them (never the private key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FcmCredentialsOut {
    /// The Firebase project.
    pub project_id: String,
    /// The service account.
    pub client_email: String,
    /// The key's id (`private_key_id`), to tell keys apart.
    pub private_key_id: String,
    /// ISO-8601.
    pub updated_at: String,
}

/// Which APNs a tenant's app is built for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApnsEnvironment {
    /// `api.push.apple.com` (App Store and TestFlight builds).
    #[default]
    Production,
    /// `api.sandbox.push.apple.com` (development builds).
    Sandbox,
}

/// `PUT /manage/v1/tenants/{t}/push/apns`: APNs token authentication.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsCredentialsIn {
    /// The `.p8` signing key's text (write-only; omitted on a change: the stored one is kept).
    #[serde(default)]
    pub key: Option<String>,
    /// The key's id (10 characters).
    pub key_id: String,
    /// The team id (10 characters).
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Production (default) or sandbox.
    #[serde(default)]
    pub environment: ApnsEnvironment,
}

/// The APNs credentials as `/manage/v1` shows them (never the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApnsCredentialsOut {
    /// The key's id.
    pub key_id: String,
    /// The team id.
    pub team_id: String,
    /// The app's bundle id.
    pub topic: String,
    /// Production or sandbox.
    pub environment: ApnsEnvironment,
    /// ISO-8601.
    pub updated_at: String,
}

/// `GET /manage/v1/tenants/{t}/push`: a tenant's push set-up at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushOut {
    /// The Web Push public key (VAPID, base64url), which browsers subscribe with.
    pub vapid_public_key: String,
    /// When the key pair was made or last rotated (ISO-8601).
    pub vapid_updated_at: String,
    /// FCM, if configured.
    pub fcm: Option<FcmCredentialsOut>,
    /// APNs, if configured.
    pub apns: Option<ApnsCredentialsOut>,
    /// Registrations the tenant holds (reserved ids too).
    pub registrations: u64,
}

/// A registration as `/manage/v1` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationOut {
    /// The registration id.
    pub registration_id: String,
    /// `webpush`, `gcm`, `fcm` or `apns`.
    pub platform: String,
    /// The device's handle (a Web Push endpoint, an FCM or APNs token).
    pub device_id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// A template registration's name (else empty).
    pub template_name: String,
    /// The `X-ZUMO-INSTALLATION-ID` it registered with (else empty).
    pub installation_id: String,
    /// The user it registered as (else empty).
    pub user_id: String,
    /// ISO-8601.
    pub created_at: String,
    /// ISO-8601.
    pub updated_at: String,
}

/// One `push.send` (from a script or the portal's test) and what became of its notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSendOut {
    /// The send's id.
    pub id: String,
    /// `template`, `webpush`, `gcm` or `apns`.
    pub platform: String,
    /// The tag expression (empty: every registration).
    pub tags: String,
    /// ISO-8601.
    pub created_at: String,
    /// Notifications queued.
    pub queued: i64,
    /// Accepted by the push service.
    pub delivered: i64,
    /// Attempts to be tried again (429, 5xx, no answer).
    pub retried: i64,
    /// Dropped when their time to live ran out.
    pub expired: i64,
    /// Refused, or out of attempts.
    pub failed: i64,
    /// Their registration was gone at the push service, and is removed.
    pub pruned: i64,
    /// Still waiting in the outbox.
    pub waiting: i64,
}

/// `POST /manage/v1/tenants/{t}/push/test`: a test notification to a tag expression or to one
/// registration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTestIn {
    /// A tag or tag expression (none: every registration, unless `registration_id` is given).
    #[serde(default)]
    pub tags: Option<String>,
    /// One registration.
    #[serde(default)]
    pub registration_id: Option<String>,
    /// The text: sent as the template property `message` (and as the alert or data `message` of
    /// a native registration without a template).
    pub message: String,
}

/// A tier (AMS's Free/Basic/Standard): the limits and daily quotas of the tenants on it. Named
/// tiers are server configuration (`[tiers.<name>]`); an admin puts a tenant on one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Requests per second on each node (a token bucket).
    pub requests_per_second: u64,
    /// Requests the bucket holds (a burst above the rate).
    pub burst: u64,
    /// Tenant requests per UTC day, counted across nodes.
    pub api_calls_per_day: u64,
    /// Push notifications queued per UTC day.
    pub push_per_day: u64,
    /// Tables the tenant may have.
    pub max_tables: u64,
    /// The size of the tenant's database, in MB.
    pub database_mb: u64,
    /// Ceiling of the tenant's `script_cpu_ms`.
    pub script_cpu_ms: u64,
    /// Ceiling of the tenant's `script_memory_mb`.
    pub script_memory_mb: u64,
    /// Ceiling of the tenant's `script_max_concurrent`.
    pub script_max_concurrent: u64,
    /// Ceiling of the tenant's `log_retention_days`.
    pub log_retention_days: u64,
    /// Ceiling of the tenant's `log_max_mb`.
    pub log_mb: u64,
}

/// `GET /manage/v1/tiers`: a named tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierOut {
    /// Its name.
    pub name: String,
    /// Its limits.
    pub tier: Tier,
    /// New tenants (and tenants no admin put on a tier) are on it.
    pub default: bool,
}

/// `PUT /manage/v1/tenants/{t}/tier` (admin only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierIn {
    /// A configured tier's name.
    pub tier: String,
}

/// `GET /manage/v1/tenants/{t}/usage`: the tenant's tier and what it used of it today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageOut {
    /// The tier's name.
    pub tier: String,
    /// Its limits.
    pub limits: Tier,
    /// Requests today (UTC), every node.
    pub api_calls_today: u64,
    /// Push notifications queued today.
    pub push_today: u64,
    /// Tables.
    pub tables: u64,
    /// The database's size in bytes (last measured).
    pub database_bytes: u64,
    /// When the daily quotas start again (ISO-8601, the next 00:00 UTC).
    pub resets_at: String,
}

/// One bucket of a tenant's series (every node added up).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsPoint {
    /// The bucket's start (epoch seconds).
    pub t: i64,
    /// Requests.
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
    /// Script invocations.
    pub script_invocations: u64,
    /// Script CPU, milliseconds.
    pub script_cpu_ms: f64,
    /// Script errors (exceptions and limits).
    pub script_errors: u64,
    /// Requests refused or scripts stopped by a limit.
    pub limit_hits: u64,
    /// Push notifications queued.
    pub push_queued: u64,
    /// Latency percentiles of the bucket, milliseconds (upper bounds of histogram buckets).
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// `GET /manage/v1/tenants/{t}/dashboard?range=1h|24h|7d|30d`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardOut {
    /// Tenant name.
    pub name: String,
    /// Its endpoint (path or URL).
    pub url: String,
    /// `active`.
    pub status: String,
    /// The range asked for.
    pub range: String,
    /// Seconds per point.
    pub step: i64,
    /// The series, oldest first, one point per step (empty steps included).
    pub points: Vec<MetricsPoint>,
    /// The range's totals (percentiles over the whole range).
    pub totals: MetricsPoint,
    /// Requests by kind (`tables`, `api`, `jobs`, `login`, `push`, `other`) and status class.
    pub by_kind: Vec<KindCount>,
    /// The most requested tables and APIs (`tables/todo`, `api/hello`), most first.
    pub top: Vec<(String, u64)>,
    /// Limit hits by limit (`rate`, `daily_quota`, `cpu`, …).
    pub limits: Vec<(String, u64)>,
    /// Push outcomes (`delivered`, `retried`, `expired`, `failed`, `pruned`).
    pub push: Vec<(String, u64)>,
    /// Distinct installation ids today (UTC) and over the range (estimates).
    pub active_devices_today: u64,
    pub active_devices_range: u64,
    /// The tier and what is used of it today.
    pub usage: UsageOut,
}

/// Requests of one kind in [`DashboardOut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindCount {
    /// The kind.
    pub kind: String,
    /// 1xx-3xx answers.
    pub ok: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub errors: u64,
}

/// A tenant's row in the platform Monitoring view (the last 24 hours, every node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantActivity {
    /// Tenant name.
    pub name: String,
    /// Its tier.
    pub tier: String,
    /// Requests.
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// Mean latency, milliseconds.
    pub mean_latency_ms: f64,
    /// Limit hits.
    pub limit_hits: u64,
    /// Requests today against the tier's daily quota (fraction, 0..).
    pub quota_used: f64,
    /// Requests per hour over the 24 hours, oldest first (the sparkline).
    pub hourly: Vec<u64>,
}

/// A node's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeOut {
    /// The node's id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// When it started (ISO-8601).
    pub started_at: String,
    /// Its last heartbeat (ISO-8601).
    pub heartbeat_at: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: i64,
    /// Uptime at the last heartbeat, seconds.
    pub uptime_s: i64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Tenants it has served.
    pub tenants: u64,
}

/// `GET /manage/v1/monitor`: every tenant the caller may watch, and the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformOut {
    /// Tenants.
    pub tenants: Vec<TenantActivity>,
    /// Nodes.
    pub nodes: Vec<NodeOut>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_patch_replaces_only_the_members_it_gives() {
        let mut s = TenantSettings::default();
        let patch: TenantSettingsPatch = serde_json::from_str(r#"{"script_cpu_ms": 250, "cors_origins": ["app.example"], "require_https": null}"#).unwrap();
        s.apply(&patch);
        assert_eq!(s.script_cpu_ms, 250);
        assert_eq!(s.cors_origins, vec!["app.example".to_string()]);
        assert_eq!(TenantSettings { script_cpu_ms: 1_000, cors_origins: vec!["localhost".into()], ..s.clone() }, TenantSettings::default());
        // An empty patch changes nothing; stored settings missing a member take its default.
        s.apply(&TenantSettingsPatch::default());
        assert_eq!(s.script_cpu_ms, 250);
        let old: TenantSettings = serde_json::from_str(r#"{"dynamic_schema": false}"#).unwrap();
        assert_eq!(old, TenantSettings { dynamic_schema: false, ..TenantSettings::default() });
    }

    #[test]
    fn job_outcomes_keep_their_wire_form() {
        for text in ["succeeded", "failed: Error: job broke", "failed: the server stopped before the run ended"] {
            let o = JobOutcome::from(text.to_string());
            assert_eq!(o.to_string(), text);
            assert_eq!(serde_json::to_value(&o).unwrap(), serde_json::json!(text));
        }
        assert_eq!(JobOutcome::from("succeeded".to_string()), JobOutcome::Succeeded);
    }
}
