//! The `roost` command: `serve`, `migrate`, `default-config`, and tenant/table management. Thin: it
//! parses arguments, loads configuration and calls the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use roost::manage::{self, ManageError};
use roost::Config;
use roost_api::{ColumnIn, IdKind, TableIn, TablePermissions, TenantSettingsPatch};
use std::path::PathBuf;

/// mimalloc instead of glibc malloc: the server frees on other threads than it allocates (tokio moves
/// tasks), where glibc's arena locks showed up as futex waits in the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Roost: a self-hosted, multi-tenant mobile backend speaking the Azure Mobile Services protocol.
///
/// Settings come from the embedded defaults (`roost default-config` prints them with comments), then
/// `roost.toml` (or --config / ROOST_CONFIG), then environment variables:
///   ROOST_LISTEN                 address of `serve` (default 127.0.0.1:8080)
///   ROOST_DATA                   data folder (default ./roost-data)
///   ROOST_DATABASE_URL           postgres://… to use PostgreSQL instead of the embedded SQLite
///   ROOST_PG_MAX_CONNECTIONS     PostgreSQL pool size per node (default 32)
///   ROOST_ADMIN_TOKEN            bearer token of /manage/v1 (default: generated into <data>/admin-token)
///   ROOST_TENANT_DOMAIN          also address tenants as {tenant}.{domain}
///   ROOST_TRUST_FORWARDED_PROTO  honour X-Forwarded-Proto (true/false)
///   ROOST_LOG                    log filter, e.g. info or roost=debug
///   ROOST_SCHEDULER_TICK_MS      how often this node looks for due jobs (default 10000; 0 = never)
///   ROOST_PORTAL_DIR             a folder of a built portal to serve at /portal/ (default: the one embedded)
///   ROOST_SECURE_COOKIES         mark the portal session cookie Secure (behind HTTPS)
///   ROOST_SESSION_IDLE_MINUTES   portal sessions end after this idle time (default 720)
///   ROOST_MANAGE_LISTEN          serve the portal and /manage/v1 on their own origin (recommended)
///   ROOST_NPM_REGISTRY           the registry tenants' npm packages come from
///   ROOST_TENANT_MAX_*           ceilings of tenant limits: SCRIPT_CPU_MS (5000), SCRIPT_MEMORY_MB
///                                (256), SCRIPT_MAX_CONCURRENT (64), REQUEST_TIMEOUT_MS (60000),
///                                BODY_KB (10240), PACKAGES_INSTALL_SECONDS (900), PACKAGES_MB (1024)
/// then the flags below.
#[derive(Parser, Debug)]
#[command(name = "roost", version, verbatim_doc_comment)]
struct Cli {
    /// Configuration file (default: ./roost.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data folder (overrides ROOST_DATA).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the platform.
    Serve {
        /// Listen address (overrides ROOST_LISTEN), e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run catalog migrations and exit.
    Migrate,
    /// Print the default configuration file, with comments.
    DefaultConfig,
    /// Manage tenants ("mobile services").
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage a tenant's tables.
    #[command(subcommand)]
    Table(TableCmd),
    /// Manage a tenant's scripts: table scripts (`todo.insert`), APIs, jobs, shared modules, extensions.
    #[command(subcommand)]
    Script(ScriptCmd),
    /// Manage platform accounts of the portal and /manage/v1 (the first admin account, for one).
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Manage a tenant's identity providers (`/login/{name}`).
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Manage a tenant's push: credentials, the Web Push key, registrations, sends.
    #[command(subcommand)]
    Push(PushCmd),
}

#[derive(Subcommand, Debug)]
enum PushCmd {
    /// The Web Push public key, FCM and APNs credentials (never a key) and the registrations' count.
    Show {
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Set FCM HTTP v1 credentials from a service account's JSON key file.
    Fcm {
        tenant: String,
        /// The key file (as downloaded from Google Cloud).
        #[arg(long)]
        service_account: std::path::PathBuf,
    },
    /// Set APNs token authentication (a .p8 key; without --key the stored key is kept).
    Apns {
        tenant: String,
        /// The .p8 signing key file.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        team_id: String,
        /// The app's bundle id.
        #[arg(long)]
        topic: String,
        /// Use APNs' sandbox (development builds) instead of production.
        #[arg(long)]
        sandbox: bool,
    },
    /// Remove a platform's credentials (fcm or apns).
    Remove {
        tenant: String,
        #[arg(value_parser = ["fcm", "apns"])]
        platform: String,
    },
    /// Make a new Web Push key pair (browsers must subscribe again).
    RotateVapid { tenant: String },
    /// List registrations, newest first.
    Registrations {
        tenant: String,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Recent sends and their counts (or one send's, by id).
    Sends {
        tenant: String,
        /// One send.
        id: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Send a test notification (`{"message": TEXT}`) to a tag expression or one registration.
    Test {
        tenant: String,
        message: String,
        #[arg(long)]
        tags: Option<String>,
        #[arg(long)]
        registration: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum IdentityCmd {
    /// List the providers (secrets are never shown).
    List {
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Create or replace a provider. The client secret comes from ROOST_CLIENT_SECRET, else from the
    /// first line of stdin with --secret-stdin (never from the command line); without either, a
    /// stored secret is kept.
    Set {
        tenant: String,
        /// The name in /login/{name}: a preset (google, microsoftaccount, aad, apple, facebook) or any.
        name: String,
        #[arg(long)]
        client_id: String,
        /// google, microsoftaccount, aad, apple, facebook or oidc (default: the name's preset, else oidc).
        #[arg(long)]
        kind: Option<String>,
        /// The issuer's `…/.well-known/openid-configuration` (presets fill it).
        #[arg(long)]
        discovery_url: Option<String>,
        /// Read the client secret from the first line of stdin.
        #[arg(long)]
        secret_stdin: bool,
        /// Scopes beyond openid, space-separated (default "profile email").
        #[arg(long)]
        scopes: Option<String>,
        /// Another client id accepted as an id token's audience (repeatable).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// aad: an Entra tenant id whose users may sign in (repeatable; none: any tenant).
        #[arg(long = "entra-tenant")]
        entra_tenants: Vec<String>,
    },
    /// Remove a provider.
    Remove { tenant: String, name: String },
}

#[derive(Subcommand, Debug)]
enum AdminCmd {
    /// Create an account. The password comes from ROOST_PASSWORD, else from the first line of stdin.
    Create {
        #[arg(long)]
        email: String,
        /// The account's role.
        #[arg(long, value_enum, default_value_t = RoleArg::Admin)]
        role: RoleArg,
    },
    /// List accounts.
    List,
    /// Delete an account by e-mail.
    Delete { email: String },
}

#[derive(Subcommand, Debug)]
enum ScriptCmd {
    /// List scripts.
    List {
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a script's text.
    Get { tenant: String, kind: String, name: String },
    /// Create or replace a script from a file (`-` for stdin); its syntax is checked first.
    Set {
        tenant: String,
        /// table, api, job, shared or extension.
        kind: String,
        /// `<table>.<insert|read|update|delete>`, or the API, job, module or extension name.
        name: String,
        file: PathBuf,
        /// API permissions as JSON (`{"routes":{"*":{"permission":"public"}}}`), or a file holding it.
        #[arg(long)]
        permissions: Option<String>,
        /// Job schedule as JSON (`{"interval":15,"unit":"minute","enabled":true}`).
        #[arg(long)]
        schedule: Option<String>,
    },
    /// Delete a script.
    Delete { tenant: String, kind: String, name: String },
    /// Print the tenant's script log (oldest first).
    Logs {
        tenant: String,
        /// Only lines after this id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCmd {
    /// Import a service folder in the Mobile Services layout (table/, api/, scheduler/, shared/,
    /// extensions/): creates the tenant if needed, then its tables, permissions, scripts, APIs, jobs
    /// and shared modules, and runs extensions/startup.js. Existing tables keep their rows and columns.
    Import {
        name: String,
        dir: PathBuf,
        /// Print the tenant as JSON (as `tenant create --json`).
        #[arg(long)]
        json: bool,
    },
    /// Export a tenant's tables (permissions), scripts, APIs, jobs and shared modules into a folder.
    Export {
        name: String,
        dir: PathBuf,
        /// Also write the identity providers' client secrets into settings.json.
        #[arg(long)]
        with_secrets: bool,
    },
    /// Back a tenant up into one archive FILE: its keys, settings, scripts, identity providers, push
    /// credentials and registrations, packages, and every table's rows with their system properties
    /// (one snapshot, taken while writes go on). The file holds the tenant's secrets: keep it so.
    Backup { name: String, file: PathBuf },
    /// Restore a tenant from a backup FILE, on this platform and backend, under its own name or
    /// `--as NEW`. The tenant must not exist; other tenants are not touched.
    Restore {
        file: PathBuf,
        /// The name to restore under.
        #[arg(long = "as")]
        as_name: Option<String>,
    },
    /// Create a tenant with fresh application and master keys.
    Create {
        name: String,
        /// Print the tenant as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a tenant, its keys and settings.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a tenant and all its data.
    Delete { name: String },
    /// Mint a user token (X-ZUMO-AUTH) for a tenant.
    Token {
        name: String,
        /// The token's user id, e.g. Custom:42.
        #[arg(long)]
        user_id: String,
        /// Lifetime in seconds (default 30 days).
        #[arg(long, default_value_t = 30 * 24 * 3600)]
        ttl: i64,
    },
    /// Revoke every user token of a tenant (its keys stay).
    RevokeTokens { name: String },
    /// Put a tenant on a tier (`[tiers.*]` in the configuration), or show its tier without TIER.
    Tier { name: String, tier: Option<String> },
    /// Regenerate the application or master key.
    RegenerateKey {
        name: String,
        /// Which key.
        #[arg(value_enum)]
        kind: KeyArg,
    },
    /// Change settings.
    Set {
        name: String,
        /// Dynamic schema on or off.
        #[arg(long)]
        dynamic_schema: Option<bool>,
        /// Allowed CORS host patterns, comma-separated.
        #[arg(long)]
        cors_origins: Option<String>,
        /// Body size limit in KiB.
        #[arg(long)]
        max_body_kb: Option<u64>,
        /// Request timeout in milliseconds.
        #[arg(long)]
        request_timeout_ms: Option<u64>,
        /// Refuse plain-HTTP requests (403).
        #[arg(long)]
        require_https: Option<bool>,
        /// CPU time per script invocation, in milliseconds.
        #[arg(long)]
        script_cpu_ms: Option<u64>,
        /// Script memory of the tenant, in MiB.
        #[arg(long)]
        script_memory_mb: Option<u64>,
        /// Script invocations that may run at once.
        #[arg(long)]
        script_max_concurrent: Option<u64>,
        /// An app setting for scripts (`process.env`), as NAME=VALUE; repeat for several. Replaces all.
        #[arg(long = "app-setting")]
        app_settings: Vec<String>,
        /// Hosts scripts may reach on loopback or private addresses, comma-separated.
        #[arg(long)]
        outbound_allow: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TableCmd {
    /// Create a table (string ids by default).
    Create {
        tenant: String,
        table: String,
        /// Legacy integer identity ids (no system properties).
        #[arg(long)]
        integer_id: bool,
        /// Soft delete (adds __deleted).
        #[arg(long)]
        soft_delete: bool,
        /// e.g. insert=public,read=application,update=user,delete=admin (default application).
        #[arg(long)]
        permissions: Option<String>,
    },
    /// List a tenant's tables.
    List {
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Drop a table and its rows.
    Drop { tenant: String, table: String },
    /// List a table's columns.
    Columns {
        tenant: String,
        table: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a column: string, number, boolean or date.
    AddColumn { tenant: String, table: String, column: String, r#type: String },
    /// Drop a column.
    DropColumn { tenant: String, table: String, column: String },
    /// Set operation permissions, e.g. insert=public,read=user.
    Permissions { tenant: String, table: String, spec: String },
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<ManageError>() {
                Some(m) => eprintln!("error: {m}"),
                None => eprintln!("error: {e:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Command::DefaultConfig) {
        print!("{}", roost::config::DEFAULT_CONFIG);
        return Ok(());
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(d) = cli.data {
        config.data = d;
    }
    if !matches!(cli.command, Command::Serve { .. }) {
        // Commands print their results; only warnings (e.g. a server that did not confirm a change) are logged.
        roost::init_telemetry("warn");
    }
    match cli.command {
        Command::Serve { listen } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            roost::init_telemetry(&config.log);
            let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
            println!("Roost listening on http://{}", listener.local_addr()?);
            // The portal and /manage/v1 on their own origin (the recommended layout), or beside the tenants.
            let manage = if config.manage_listen.is_empty() {
                println!("Portal: http://{}/portal/", listener.local_addr()?);
                None
            } else {
                let m =
                    tokio::net::TcpListener::bind(&config.manage_listen).await.with_context(|| format!("binding manage_listen {}", config.manage_listen))?;
                println!("Portal: http://{}/portal/ (its own origin; /manage/v1 is there too)", m.local_addr()?);
                Some(m)
            };
            let state = roost::build(&config).await?;
            roost::serve_with(state, listener, manage, roost::shutdown_signal()).await
        }
        Command::Migrate => {
            roost_storage::Storage::open(&config.storage(false)).await?;
            println!("Catalog is up to date.");
            Ok(())
        }
        Command::DefaultConfig => Ok(()),
        Command::Tenant(cmd) => tenant(&config, cmd).await,
        Command::Table(cmd) => table(&config, cmd).await,
        Command::Script(cmd) => script(&config, cmd).await,
        Command::Admin(cmd) => admin(&config, cmd).await,
        Command::Identity(cmd) => identity(&config, cmd).await,
        Command::Push(cmd) => push(&config, cmd).await,
    }
}

async fn push(config: &Config, cmd: PushCmd) -> anyhow::Result<()> {
    use roost::push::{admin, native};
    let state = roost::build_for_cli(config).await?;
    let send_line = |s: &roost_api::PushSendOut| {
        println!(
            "{}\t{}\t{}\tqueued {}\tdelivered {}\tretried {}\texpired {}\tfailed {}\tpruned {}\twaiting {}\t{}",
            s.id, s.created_at, s.platform, s.queued, s.delivered, s.retried, s.expired, s.failed, s.pruned, s.waiting, s.tags
        )
    };
    match cmd {
        PushCmd::Show { tenant, json } => {
            let p = admin::show(&state, &tenant).await?;
            if json {
                return print_json(&p);
            }
            println!("Web Push public key\t{} (since {})", p.vapid_public_key, p.vapid_updated_at);
            match &p.fcm {
                Some(f) => println!("FCM\tproject {}\t{}\tkey {}", f.project_id, f.client_email, f.private_key_id),
                None => println!("FCM\tnot configured"),
            }
            match &p.apns {
                Some(a) => println!("APNs\tkey {}\tteam {}\t{}\t{:?}", a.key_id, a.team_id, a.topic, a.environment),
                None => println!("APNs\tnot configured"),
            }
            println!("Registrations\t{}", p.registrations);
        }
        PushCmd::Fcm { tenant, service_account } => {
            let text = std::fs::read_to_string(&service_account).map_err(|e| anyhow::anyhow!("{}: {e}", service_account.display()))?;
            let f = native::put_fcm(&state, &tenant, roost_api::FcmCredentialsIn { service_account: text }).await?;
            println!("Saved FCM credentials of {tenant}: project {} as {}", f.project_id, f.client_email);
        }
        PushCmd::Apns { tenant, key, key_id, team_id, topic, sandbox } => {
            let key = match key {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?),
                None => None,
            };
            let environment = if sandbox { roost_api::ApnsEnvironment::Sandbox } else { roost_api::ApnsEnvironment::Production };
            let a = native::put_apns(&state, &tenant, roost_api::ApnsCredentialsIn { key, key_id, team_id, topic, environment }).await?;
            println!("Saved APNs credentials of {tenant}: key {} of team {} for {} ({:?})", a.key_id, a.team_id, a.topic, a.environment);
        }
        PushCmd::Remove { tenant, platform } => {
            native::remove(&state, &tenant, &platform).await?;
            println!("Removed the {platform} credentials of {tenant}");
        }
        PushCmd::RotateVapid { tenant } => println!("{}", admin::rotate_vapid(&state, &tenant).await?.vapid_public_key),
        PushCmd::Registrations { tenant, platform, tag, user, json } => {
            let found = admin::registrations(&state, &tenant, platform.as_deref(), tag.as_deref(), user.as_deref()).await?;
            if json {
                return print_json(&found);
            }
            for g in found {
                println!("{}\t{}\t{}\t{}\t{}\t{}", g.registration_id, g.platform, g.device_id, g.tags.join(","), g.user_id, g.created_at);
            }
        }
        PushCmd::Sends { tenant, id, limit, json } => {
            let sends = match id {
                Some(id) => vec![admin::send_status(&state, &tenant, &id).await?],
                None => admin::sends(&state, &tenant, limit).await?,
            };
            if json {
                return print_json(&sends);
            }
            sends.iter().for_each(send_line);
        }
        PushCmd::Test { tenant, message, tags, registration } => {
            let s = admin::test(&state, &tenant, roost_api::PushTestIn { tags, registration_id: registration, message }).await?;
            send_line(&s);
        }
    }
    Ok(())
}

async fn identity(config: &Config, cmd: IdentityCmd) -> anyhow::Result<()> {
    let state = roost::build_for_cli(config).await?;
    match cmd {
        IdentityCmd::List { tenant, json } => {
            let providers = roost::identity::list(&state, &tenant).await?;
            if json {
                print_json(&providers)?;
            } else {
                for p in providers {
                    let secret = p.client_secret_hint.unwrap_or_else(|| "no secret".into());
                    println!("{}	{}	{}	{}	{}", p.name, p.kind.as_str(), p.client_id, secret, p.discovery_url.unwrap_or_default());
                }
            }
        }
        IdentityCmd::Set { tenant, name, client_id, kind, discovery_url, secret_stdin, scopes, audiences, entra_tenants } => {
            let kind = match kind {
                Some(k) => Some(roost_api::ProviderKind::parse(&k).ok_or_else(|| ManageError::BadInput(format!("Unknown provider kind '{k}'.")))?),
                None => None,
            };
            let client_secret = match std::env::var("ROOST_CLIENT_SECRET") {
                Ok(s) => Some(s),
                Err(_) if secret_stdin => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    Some(line.trim_end_matches(['\r', '\n']).to_string())
                }
                Err(_) => None,
            };
            let input = roost_api::ProviderIn {
                kind,
                discovery_url,
                client_id,
                client_secret,
                scopes: scopes.map(|s| s.split_whitespace().map(str::to_string).collect()),
                audiences,
                entra_tenants,
            };
            let p = roost::identity::put(&state, &tenant, &name, input).await?;
            println!("Saved provider {} of {tenant}: /login/{} (user ids {}:<subject>)", p.name, p.name, p.uid_prefix);
        }
        IdentityCmd::Remove { tenant, name } => {
            roost::identity::remove(&state, &tenant, &name).await?;
            println!("Removed provider {name} of {tenant}");
        }
    }
    Ok(())
}

async fn admin(config: &Config, cmd: AdminCmd) -> anyhow::Result<()> {
    let s = open(config).await?;
    match cmd {
        AdminCmd::Create { email, role } => {
            let role = role.into();
            let password = match std::env::var("ROOST_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let a = roost::accounts::create_account(&s, &email, &password, role).await?;
            println!("Created {} account {}", a.role.as_str(), a.email);
        }
        AdminCmd::List => {
            for a in roost::accounts::list_accounts(&s).await? {
                println!("{}\t{}\t{}", a.email, a.role.as_str(), a.created_at);
            }
        }
        AdminCmd::Delete { email } => {
            let a = s.account_by_email(&email).await?.ok_or_else(|| anyhow::anyhow!("no account with e-mail '{email}'"))?;
            roost::accounts::delete_account(&s, &a.id).await?;
            println!("Deleted account {email}");
        }
    }
    Ok(())
}

async fn open(config: &Config) -> anyhow::Result<roost_storage::Storage> {
    Ok(roost_storage::Storage::open(&config.storage(false)).await?)
}

async fn tenant(config: &Config, cmd: TenantCmd) -> anyhow::Result<()> {
    if let TenantCmd::Import { name, dir, json } = &cmd {
        let r = roost::transfer::import(config, name, dir).await?;
        if *json {
            print_json(&r.tenant)?;
        } else {
            if r.created {
                println!(
                    "Created tenant {}\n  endpoint:        {}\n  application key: {}\n  master key:      {}",
                    r.tenant.name, r.tenant.url, r.tenant.application_key, r.tenant.master_key
                );
            }
            println!("Tables created: {}", if r.tables_created.is_empty() { "none".into() } else { r.tables_created.join(", ") });
            println!("Tables kept:    {}", if r.tables_kept.is_empty() { "none".into() } else { r.tables_kept.join(", ") });
            for p in &r.packages_added {
                println!("Added {p} to package.json: the Mobile Services runtime bundled it, and a script requires it");
            }
            if !r.packages.is_empty() {
                println!("Packages:       {}", r.packages.iter().map(|(n, v)| format!("{n}@{v}")).collect::<Vec<_>>().join(", "));
            }
            for s in &r.scripts {
                println!("Saved {s}");
            }
            if r.startup_ran {
                println!("Ran /extensions/startup.js");
            }
            for p in &r.providers {
                println!("Identity provider {p}: /login/{p}");
            }
            if !r.settings_ignored.is_empty() {
                println!("Settings not taken (the platform's own): {}", r.settings_ignored.join(", "));
            }
        }
        return Ok(());
    }
    let s = open(config).await?;
    match cmd {
        TenantCmd::Import { .. } => {}
        TenantCmd::Backup { name, file } => {
            let app = roost::build_for_cli(config).await?;
            let b = roost::backup::to_file(&app, &name, &file).await?;
            println!("Backed up {b} to {}", file.display());
        }
        TenantCmd::Restore { file, as_name } => {
            let app = roost::build_for_cli(config).await?;
            let input = std::fs::File::open(&file).map_err(|e| anyhow::anyhow!("opening {}: {e}", file.display()))?;
            let b = roost::backup::restore(&app, Box::new(input), as_name.as_deref()).await?;
            println!("Restored {b} from {}", file.display());
        }
        TenantCmd::Export { name, dir, with_secrets } => {
            let app = roost::build_for_cli(config).await?;
            let n = roost::transfer::export(&app, &name, &dir, with_secrets).await?;
            println!("Wrote {n} files to {}", dir.display());
        }
        TenantCmd::Create { name, json } => {
            let t = manage::create_tenant(&s, &config.tenant_maxima(), manage::SettingsBy::Admin, &name, None).await?;
            if json {
                print_json(&t)?;
            } else {
                println!(
                    "Created tenant {}\n  endpoint:        {}\n  application key: {}\n  master key:      {}",
                    t.name, t.url, t.application_key, t.master_key
                );
            }
        }
        TenantCmd::List { json } => {
            let ts = manage::list_tenants(&s).await?;
            if json {
                print_json(&ts)?;
            } else {
                for t in ts {
                    println!("{}", t.name);
                }
            }
        }
        TenantCmd::Show { name, json } => {
            let t = manage::show_tenant(&s, &name).await?;
            if json {
                print_json(&t)?;
            } else {
                println!(
                    "{}\n  endpoint:        {}\n  application key: {}\n  master key:      {}\n  dynamic schema:  {}\n  cors origins:    {}\n  max body:        {} KiB\n  request timeout: {} ms\n  created:         {}",
                    t.name,
                    t.url,
                    t.application_key,
                    t.master_key,
                    t.settings.dynamic_schema,
                    t.settings.cors_origins.join(", "),
                    t.settings.max_body_kb,
                    t.settings.request_timeout_ms,
                    t.created_at
                );
            }
        }
        TenantCmd::Delete { name } => {
            manage::delete_tenant(&s, &name).await?;
            println!("Deleted tenant {name}");
        }
        TenantCmd::Token { name, user_id, ttl } => println!("{}", manage::mint_token(&s, &name, &user_id, ttl).await?),
        TenantCmd::Tier { name, tier } => {
            let tiers = roost::monitor::tiers::Tiers::of_config(config);
            if let Some(tier) = &tier {
                if !tiers.tiers.contains_key(tier) {
                    anyhow::bail!("'{tier}' is not a tier; the tiers are {}", tiers.tiers.keys().cloned().collect::<Vec<_>>().join(", "));
                }
                s.set_tier(&name, tier).await.map_err(|e| anyhow::anyhow!("tenant {name}: {e}"))?;
            }
            let record = s.tenant(&name).await?.ok_or_else(|| anyhow::anyhow!("tenant {name} does not exist"))?.record.clone();
            let (tier_name, limits) = tiers.of(&record.tier);
            println!("{name} is on tier {tier_name}");
            print_json(limits)?;
        }
        TenantCmd::RevokeTokens { name } => println!("Revoked every user token of {name} at {}", manage::revoke_tokens(&s, &name).await?.revoked_at),
        TenantCmd::RegenerateKey { name, kind } => println!("{}", manage::regenerate_key(&s, &name, kind.into()).await?.key),
        TenantCmd::Set {
            name,
            dynamic_schema,
            cors_origins,
            max_body_kb,
            request_timeout_ms,
            require_https,
            script_cpu_ms,
            script_memory_mb,
            script_max_concurrent,
            app_settings,
            outbound_allow,
        } => {
            let list = |c: String| c.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let app_settings = if app_settings.is_empty() {
                None
            } else {
                let mut m = std::collections::BTreeMap::new();
                for kv in app_settings {
                    let (k, v) = kv.split_once('=').ok_or_else(|| anyhow::anyhow!("--app-setting takes NAME=VALUE, not '{kv}'"))?;
                    m.insert(k.to_string(), v.to_string());
                }
                Some(m)
            };
            let patch = TenantSettingsPatch {
                dynamic_schema,
                cors_origins: cors_origins.map(list),
                max_body_kb,
                request_timeout_ms,
                require_https,
                script_cpu_ms,
                script_memory_mb,
                script_max_concurrent,
                app_settings,
                outbound_allow: outbound_allow.map(list),
                ..Default::default()
            };
            print_json(&manage::update_settings(&s, &config.tenant_maxima(), manage::SettingsBy::Admin, &name, &patch).await?.settings)?;
        }
    }
    Ok(())
}

async fn table(config: &Config, cmd: TableCmd) -> anyhow::Result<()> {
    let s = open(config).await?;
    match cmd {
        TableCmd::Create { tenant, table, integer_id, soft_delete, permissions } => {
            let mut perms = TablePermissions::default();
            if let Some(spec) = permissions {
                perms.apply_spec(&spec).map_err(ManageError::BadInput)?;
            }
            let spec = TableIn { name: table, id_kind: if integer_id { IdKind::Integer } else { IdKind::String }, soft_delete, permissions: perms };
            let t = manage::create_table(&s, &roost::monitor::tiers::Tiers::of_config(config), &tenant, &spec).await?;
            println!("Created table {} in {tenant}", t.name);
        }
        TableCmd::List { tenant, json } => {
            let ts = manage::list_tables(&s, &tenant).await?;
            if json {
                print_json(&ts)?;
            } else {
                for t in ts {
                    let p = t.permissions;
                    println!(
                        "{}\t{:?} ids{}\tinsert={} read={} update={} delete={}",
                        t.name,
                        t.id_kind,
                        if t.soft_delete { ", soft delete" } else { "" },
                        p.insert.as_str(),
                        p.read.as_str(),
                        p.update.as_str(),
                        p.delete.as_str()
                    );
                }
            }
        }
        TableCmd::Drop { tenant, table } => {
            manage::drop_table(&s, &tenant, &table).await?;
            println!("Dropped table {table} of {tenant}");
        }
        TableCmd::Columns { tenant, table, json } => {
            let t = manage::show_table(&s, &tenant, &table).await?;
            if json {
                print_json(&t.columns)?;
            } else {
                for c in t.columns {
                    println!("{}\t{}{}", c.name, c.ty, if c.system { "\t(system)" } else { "" });
                }
            }
        }
        TableCmd::AddColumn { tenant, table, column, r#type } => {
            manage::add_column(&s, &tenant, &table, &ColumnIn { name: column.clone(), ty: r#type }).await?;
            println!("Added column {column} to {table}");
        }
        TableCmd::DropColumn { tenant, table, column } => {
            manage::drop_column(&s, &tenant, &table, &column).await?;
            println!("Dropped column {column} of {table}");
        }
        TableCmd::Permissions { tenant, table, spec } => {
            let t = manage::show_table(&s, &tenant, &table).await?;
            let mut perms = t.permissions;
            perms.apply_spec(&spec).map_err(ManageError::BadInput)?;
            manage::set_permissions(&s, &tenant, &table, &perms).await?;
            println!("insert={} read={} update={} delete={}", perms.insert.as_str(), perms.read.as_str(), perms.update.as_str(), perms.delete.as_str());
        }
    }
    Ok(())
}

/// JSON given inline or as a file name.
fn json_arg<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> anyhow::Result<T> {
    let text = if v.trim_start().starts_with('{') { v.to_string() } else { std::fs::read_to_string(v).with_context(|| format!("reading {v}"))? };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

async fn script(config: &Config, cmd: ScriptCmd) -> anyhow::Result<()> {
    let s = open(config).await?;
    match cmd {
        ScriptCmd::List { tenant, json } => {
            let scripts = manage::list_scripts(&s, &tenant).await?;
            if json {
                print_json(&scripts)?;
            } else {
                for sc in scripts {
                    println!("{}\t{}\t{}", sc.kind, sc.name, sc.updated_at);
                }
            }
        }
        ScriptCmd::Get { tenant, kind, name } => print!("{}", manage::get_script(&s, &tenant, &kind, &name).await?.body),
        ScriptCmd::Set { tenant, kind, name, file, permissions, schedule } => {
            let body = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let input = roost_api::ScriptIn {
                body,
                permissions: permissions.map(|p| json_arg("--permissions", &p)).transpose()?,
                schedule: schedule.map(|p| json_arg("--schedule", &p)).transpose()?,
            };
            let out = manage::put_script(&s, &tenant, &kind, &name, &input).await?;
            println!("Saved {}", out.path);
        }
        ScriptCmd::Delete { tenant, kind, name } => {
            manage::delete_script(&s, &tenant, &kind, &name).await?;
            println!("Deleted {kind} script {name}");
        }
        ScriptCmd::Logs { tenant, after, limit } => {
            let q = roost_api::LogQuery { after, limit: Some(limit), ..Default::default() };
            for l in manage::logs(&s, &tenant, &q).await? {
                println!("{}\t{}\t{}\t{}\t{}", l.id, l.time, l.level, l.source, l.message);
            }
        }
    }
    Ok(())
}

/// A platform account's role, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Everything.
    Admin,
    /// The tenants they created or were given.
    Owner,
    /// Tenant list, monitoring and logs; never data, scripts, keys or settings.
    Support,
}

impl From<RoleArg> for roost_api::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => roost_api::Role::Admin,
            RoleArg::Owner => roost_api::Role::Owner,
            RoleArg::Support => roost_api::Role::Support,
        }
    }
}

/// A tenant key, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyArg {
    /// The application key.
    Application,
    /// The master key.
    Master,
}

impl From<KeyArg> for roost_api::KeyKind {
    fn from(k: KeyArg) -> Self {
        match k {
            KeyArg::Application => roost_api::KeyKind::Application,
            KeyArg::Master => roost_api::KeyKind::Master,
        }
    }
}
