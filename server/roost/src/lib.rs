//! Roost: a self-hosted, multi-tenant mobile backend speaking the Azure Mobile Services protocol.
//!
//! This crate is the only one that knows HTTP. [`run`] wires the server; `main.rs` only parses the
//! command line and calls it (tests call it too, with a port-0 listener).

pub mod accounts;
pub mod auth;
pub mod backup;
pub mod config;
pub mod error;
pub mod http;
pub mod identity;
pub mod manage;
pub mod monitor;
pub mod outbound;
pub mod packages;
pub mod passwords;
pub mod push;
pub mod scheduler;
pub mod scripting;
pub mod tables;
pub mod tasks;
pub mod telemetry;
pub mod transfer;

use std::future::IntoFuture as _;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use config::{Config, ExposeSecret, SecretString};

/// Everything a request handler may need. Cloning is cheap.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Process-wide state.
pub struct App {
    /// Catalog and tenant data.
    pub storage: roost_storage::Storage,
    /// Bearer token for `/manage/v1`.
    pub admin_token: SecretString,
    /// The key sealing identity-provider client secrets.
    pub identity_key: identity::IdentityKey,
    /// Identity providers' discovery documents and keys.
    pub discovery: identity::login::DiscoveryCache,
    /// Push registrations one tenant may hold.
    pub push_max_registrations: u64,
    /// The VAPID `sub` of Web Push requests.
    pub push_contact: String,
    /// The push outbox's worker state.
    pub outbox: push::deliver::Outbox,
    /// How long a claim on queued notifications holds, in milliseconds.
    pub push_claim_lease_ms: i64,
    /// Where the native push services are reached.
    pub push_services: push::native::Services,
    /// Where Facebook Login is reached.
    pub facebook: identity::facebook::Endpoints,
    /// `{tenant}.{domain}` addressing, lower-case, if configured.
    pub tenant_domain: Option<String>,
    /// Honour `X-Forwarded-Proto`.
    pub trust_forwarded_proto: bool,
    /// On SQLite, the lock that makes this the only server of its data folder (held while alive).
    pub data_lock: Option<std::fs::File>,
    /// When this process started (for `/diagnostics` uptime).
    pub started: std::time::Instant,
    /// The script engine (tenant runtimes).
    pub scripts: roost_scripts::ScriptEngine,
    /// Where script logs go.
    pub logs: scripting::LogSink,
    /// How often the scheduler ticks (`None`: not on this node).
    pub scheduler_tick: Option<std::time::Duration>,
    /// Tenants whose `extensions/startup.js` (by version) this process has seen to.
    pub started_tenants: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The built portal, served at `/portal/`.
    pub portal_dir: std::path::PathBuf,
    /// `Secure` on the session cookie.
    pub secure_cookies: bool,
    /// Portal session idle timeout.
    pub session_idle: std::time::Duration,
    /// Where tenants' npm packages are installed (`<data>/packages`).
    pub packages_root: std::path::PathBuf,
    /// Module resolvers by lock hash (an install never changes).
    pub resolvers: std::sync::Mutex<std::collections::HashMap<String, Arc<packages::Resolver>>>,
    /// Serialises installs on this node.
    pub installing: tokio::sync::Mutex<()>,
    /// The platform's ceilings on tenant limits.
    pub maxima: config::TenantMaxima,
    /// The portal and `/manage/v1` have a listener of their own (`manage_listen`): the main one
    /// serves tenants only.
    pub manage_apart: bool,
    /// The server's background work (loops, job runs, the log writer).
    pub tasks: tasks::Tasks,
    /// How long shutdown waits for in-flight requests and job runs (`shutdown_grace_ms`).
    pub shutdown_grace: std::time::Duration,
    /// Every tenant's counters on this node, and the Prometheus exporter.
    pub metrics: monitor::Metrics,
    /// How often the roll-up writes to the catalog.
    pub metrics_flush: std::time::Duration,
    /// Days minute rows and hour rows are kept.
    pub metrics_retention: (u64, u64),
    /// The bearer token of `GET /metrics` (empty: off on the main listener).
    pub metrics_token: SecretString,
    /// The tiers.
    pub tiers: monitor::tiers::Tiers,
    /// This node's running totals of the current metrics buckets.
    pub rollup: tokio::sync::Mutex<monitor::rollup::Rollup>,
    /// Live log tails open on this node.
    pub log_tails: std::sync::atomic::AtomicUsize,
    /// Listen address of `/metrics` alone (empty: none).
    pub metrics_listen: String,
    /// Set at SIGTERM: `/readyz` answers 503 so load balancers stop sending requests here.
    pub draining: std::sync::atomic::AtomicBool,
    /// Scheduled backups: folder, hours between them, archives kept (`backup_*`).
    pub backups: Option<(std::path::PathBuf, u64, usize)>,
    /// How long a draining node keeps serving before its listeners close (`drain_delay_ms`).
    pub drain_delay: std::time::Duration,
}

impl App {
    /// The ceilings of a tenant's limits: the platform's, lowered by its tier.
    pub fn maxima_for(&self, record: &roost_storage::TenantRecord) -> config::TenantMaxima {
        self.tiers.maxima(&self.maxima, &record.tier)
    }

    /// A tenant's tier: its name and limits.
    pub fn tier_of<'a>(&'a self, record: &'a roost_storage::TenantRecord) -> (&'a str, &'a roost_api::Tier) {
        self.tiers.of(&record.tier)
    }
}

/// Takes the data folder's server lock: on SQLite one server process owns a data folder (its write
/// path and read cache rely on it; the CLI may still run beside it).
fn lock_data_folder(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    if !config.database_url.expose_secret().is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(&config.data)?;
    let path = config.data.join("server.lock");
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Roost server is already serving the data folder {} (one server per SQLite data folder; use PostgreSQL to run several nodes)",
            config.data.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("locking {}: {e}", path.display()),
    }
}

/// Installs the log subscriber (once per process).
pub fn init_telemetry(filter: &str) {
    telemetry::init(filter);
}

/// Returns the configured admin token, or the one stored in the data folder, creating it on first
/// start (the second value is true when it was just created).
pub fn admin_token(config: &Config) -> anyhow::Result<(SecretString, bool)> {
    if !config.admin_token.expose_secret().is_empty() {
        return Ok((config.admin_token.clone(), false));
    }
    let path = config.data.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok((t.trim().into(), false));
        }
    }
    std::fs::create_dir_all(&config.data)?;
    let token = auth::generate_key();
    std::fs::write(&path, &token).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok((token.into(), true))
}

/// Builds the application state: opens (and migrates) storage.
pub async fn build(config: &Config) -> anyhow::Result<AppState> {
    let data_lock = lock_data_folder(config)?;
    build_with(config, data_lock, true).await
}

/// The application state of a CLI command that runs scripts (`tenant import`): no server lock, no
/// change listener, no scheduler.
pub async fn build_for_cli(config: &Config) -> anyhow::Result<AppState> {
    let mut config = config.clone();
    config.scheduler_tick_ms = 0;
    build_with(&config, None, false).await
}

async fn build_with(config: &Config, data_lock: Option<std::fs::File>, server: bool) -> anyhow::Result<AppState> {
    let storage = roost_storage::Storage::open(&config.storage(server)).await?;
    // A CLI process serves nothing: it neither needs nor creates the admin token.
    let (admin_token, created) = if server { admin_token(config)? } else { (SecretString::from(""), false) };
    if created {
        // Printed once, on first start, so the operator can call /manage/v1.
        println!("Generated the platform admin token (stored in {}): {}", config.data.join("admin-token").display(), admin_token.expose_secret());
    }
    let identity_key = identity::IdentityKey::load(&config.identity_key, &config.data)?;
    // Every node of a platform seals and opens tenants' secrets with one key: a node with another
    // one would fail every login and push of tenants set up elsewhere, so it refuses to start.
    let fingerprint = identity_key.fingerprint();
    if storage.platform_fact("identity_key_fingerprint", &fingerprint).await? != fingerprint {
        anyhow::bail!(
            "this node's identity_key is not the one the other nodes of this database use (the catalog holds another key's fingerprint): \
             give every node the same identity_key (ROOST_IDENTITY_KEY), as docs/deploy.md says"
        );
    }
    let tenant_domain = Some(config.tenant_domain.to_ascii_lowercase()).filter(|d| !d.is_empty());
    packages::set_registry(&config.npm_registry);
    let tasks = tasks::Tasks::default();
    Ok(AppState(Arc::new_cyclic(|app| App {
        storage,
        admin_token,
        identity_key,
        discovery: Default::default(),
        push_max_registrations: config.push_max_registrations,
        push_contact: config.push_contact.clone(),
        outbox: Default::default(),
        push_claim_lease_ms: config.push_claim_lease_ms.min(i64::MAX as u64) as i64,
        push_services: push::native::Services {
            fcm: config.push_fcm_url.clone(),
            oauth_token: config.push_oauth_token_url.clone(),
            apns: config.push_apns_url.clone(),
            apns_sandbox: config.push_apns_sandbox_url.clone(),
        },
        facebook: identity::facebook::Endpoints { dialog: config.facebook_dialog_url.clone(), graph: config.facebook_graph_url.clone() },
        tenant_domain,
        trust_forwarded_proto: config.trust_forwarded_proto,
        data_lock,
        started: std::time::Instant::now(),
        scripts: roost_scripts::ScriptEngine::new(),
        logs: scripting::LogSink::start(app.clone(), &tasks),
        scheduler_tick: Some(std::time::Duration::from_millis(config.scheduler_tick_ms)).filter(|d| !d.is_zero()),
        started_tenants: Default::default(),
        portal_dir: config.portal_dir.clone(),
        secure_cookies: config.secure_cookies,
        session_idle: std::time::Duration::from_secs(config.session_idle_minutes * 60),
        packages_root: packages::root(&config.data),
        resolvers: Default::default(),
        installing: Default::default(),
        maxima: config.tenant_maxima(),
        manage_apart: !config.manage_listen.is_empty(),
        tasks,
        shutdown_grace: std::time::Duration::from_millis(config.shutdown_grace_ms),
        metrics: monitor::Metrics::new(config.metrics && server, config.metrics_max_tenants),
        metrics_flush: std::time::Duration::from_millis(config.metrics_flush_ms),
        metrics_retention: (config.metrics_minute_days, config.metrics_hour_days),
        metrics_token: config.metrics_token.clone(),
        tiers: monitor::tiers::Tiers::of_config(config),
        log_tails: Default::default(),
        rollup: Default::default(),
        metrics_listen: config.metrics_listen.clone(),
        draining: Default::default(),
        backups: (!config.backup_dir.as_os_str().is_empty())
            .then(|| (config.backup_dir.clone(), config.backup_every_hours.max(1), config.backup_keep.max(1) as usize)),
        drain_delay: std::time::Duration::from_millis(config.drain_delay_ms),
    })))
}

/// Serves until `shutdown` completes (and the portal with `/manage/v1` on `manage_listen`, if set).
pub async fn run(config: Config, listener: TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let state = build(&config).await?;
    let manage = if config.manage_listen.is_empty() {
        None
    } else {
        Some(TcpListener::bind(&config.manage_listen).await.map_err(|e| anyhow::anyhow!("binding manage_listen {}: {e}", config.manage_listen))?)
    };
    serve_with(state, listener, manage, shutdown).await
}

/// Serves an already built state on one listener.
pub async fn serve(state: AppState, listener: TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    serve_with(state, listener, None, shutdown).await
}

/// Serves an already built state: tenants on `listener`, and the portal and `/manage/v1` on
/// `manage` when given (the state must then have been built with `manage_listen` set).
pub async fn serve_with(
    state: AppState,
    listener: TcpListener,
    manage: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(tick) = state.scheduler_tick {
        let app = Arc::downgrade(&state.0);
        state.tasks.spawn_loop("scheduler", move |stop| scheduler::run(app, tick, stop));
    }
    match state.storage.accounts().await {
        Ok(a) if a.is_empty() => tracing::warn!("No portal accounts yet: create the first with `roost admin create --email you@example.com`"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error.cause = %e, "Could not count the portal accounts"),
    }
    let app = Arc::downgrade(&state.0);
    state.tasks.spawn_loop("push", move |stop| push::deliver::run(app, stop));
    if state.metrics.enabled {
        let app = Arc::downgrade(&state.0);
        let every = state.metrics_flush;
        state.tasks.spawn_loop("metrics", move |stop| monitor::rollup::run(app, every, stop));
    }
    if let Some((dir, every, keep)) = state.backups.clone() {
        // Checks every minute whether this period's backups are due; each is claimed once per cluster.
        let app = Arc::downgrade(&state.0);
        state.tasks.spawn_loop("backups", move |stop| async move {
            loop {
                let Some(state) = app.upgrade().map(AppState) else { return };
                backup::scheduled(&state, &dir, every, keep).await;
                drop(state);
                if !tasks::sleep_or_stop(&stop, std::time::Duration::from_secs(60)).await {
                    return;
                }
            }
        });
    }
    let app = Arc::downgrade(&state.0);
    state.tasks.spawn_loop("pruner", move |stop| async move {
        loop {
            let Some(state) = app.upgrade().map(AppState) else { return };
            prune_once(&state).await;
            drop(state);
            if !tasks::sleep_or_stop(&stop, std::time::Duration::from_secs(3600)).await {
                return;
            }
        }
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
    let draining = Arc::downgrade(&state.0);
    tokio::spawn(async move {
        shutdown.await;
        // Draining: `/readyz` fails at once, and the node goes on serving for `drain_delay_ms` so its
        // load balancer's health checks take it out before its listeners close.
        if let Some(app) = draining.upgrade() {
            app.draining.store(true, std::sync::atomic::Ordering::Release);
            let delay = app.drain_delay;
            drop(app);
            if !delay.is_zero() {
                tracing::info!(delay_ms = delay.as_millis() as u64, "Draining: /readyz answers 503; serving on until the load balancer notices");
                tokio::time::sleep(delay).await;
            }
        }
        let _ = signalled_tx.send(tokio::time::Instant::now());
        let _ = stop.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let manage_server = match manage {
        Some(l) => {
            tracing::info!(listen = %l.local_addr()?, "The portal and /manage/v1 are listening on their own origin");
            let router = http::manage_router(state.clone());
            Some(tokio::spawn(
                axum::serve(l, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                    .with_graceful_shutdown(until(stopped.clone()))
                    .into_future(),
            ))
        }
        None => None,
    };
    if !state.metrics_listen.is_empty() {
        let l = TcpListener::bind(&state.metrics_listen).await.map_err(|e| anyhow::anyhow!("binding metrics_listen {}: {e}", state.metrics_listen))?;
        tracing::info!(listen = %l.local_addr()?, "/metrics is listening on its own address");
        let router = http::metrics_router(state.clone());
        let stopped = stopped.clone();
        state.tasks.spawn_loop("metrics listener", move |_| async move {
            let _ = axum::serve(l, router).with_graceful_shutdown(until(stopped)).await;
        });
    }
    let router = http::router(state.clone());
    tracing::info!(listen = %listener.local_addr()?, "Roost is listening");
    let grace = state.shutdown_grace;
    let serving = axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(router))
        .with_graceful_shutdown(until(stopped.clone()))
        .into_future();
    // After the signal, in-flight requests get the grace period; then the server stops without them.
    let drain_limit = async {
        until(stopped).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = serving => r?,
        _ = drain_limit => tracing::warn!(grace_ms = grace.as_millis() as u64, "Requests still in flight at the end of the shutdown grace period were cut off"),
    }
    let signalled_at = signalled.await.unwrap_or_else(|_| tokio::time::Instant::now());
    if let Some(m) = manage_server {
        match tokio::time::timeout_at(signalled_at + grace, m).await {
            Ok(r) => r??,
            Err(_) => tracing::warn!("The portal listener's requests were cut off at the end of the shutdown grace period"),
        }
    }
    stop_background(&state, signalled_at + grace).await;
    Ok(())
}

/// Stops the background work in order: loops, then job runs (until `deadline`; a run still going
/// is recorded as interrupted, so none stays claimed), then the log writer, then storage's own.
pub async fn stop_background(state: &AppState, deadline: tokio::time::Instant) {
    let interrupted = state.tasks.stop(deadline).await;
    for (tenant, job, due) in interrupted {
        tracing::warn!(tenant.name = %tenant, job.name = %job, "Job `{job}` was still running at shutdown; recorded as failed");
        if let Err(e) = state.storage.finish_job_run(&tenant, &job, &due, &tasks::interrupted(), 0).await {
            tracing::warn!(tenant.name = %tenant, job.name = %job, error.cause = %e, "Could not record an interrupted job run");
        }
    }
    state.tasks.stop_writers().await;
    state.storage.close();
    tracing::info!("Roost stopped");
}

/// One pass of the hourly upkeep: expired portal sessions are deleted (a stale one is refused when
/// loaded anyway), and package installs no tenant uses any more (older than an hour) are removed.
pub async fn prune_once(app: &AppState) {
    // Log retention of every tenant (by age too, so a quiet tenant's old lines go as well).
    if let Ok(tenants) = app.storage.list_tenants().await {
        for t in tenants {
            scripting::prune_tenant_logs(app, &t.name).await;
        }
    }
    if let Err(e) = app.storage.prune_limits().await {
        tracing::warn!(error.cause = %e, "Could not prune the rate limits' events");
    }
    if let Err(e) = app.storage.prune_sessions(chrono::Utc::now().timestamp()).await {
        tracing::warn!(error.cause = %e, "Could not prune expired portal sessions");
    }
    match app.storage.package_lock_hashes().await {
        Ok(in_use) => {
            let root = app.packages_root.clone();
            let removed = tokio::task::spawn_blocking(move || packages::prune(&root, &in_use, std::time::Duration::from_secs(3600))).await.unwrap_or_default();
            if !removed.is_empty() {
                app.resolvers.lock().unwrap_or_else(|e| e.into_inner()).retain(|hash, _| !removed.contains(hash));
                tracing::info!(count = removed.len(), "Removed package installs no tenant uses");
            }
        }
        Err(e) => tracing::warn!(error.cause = %e, "Could not list the package installs in use"),
    }
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
