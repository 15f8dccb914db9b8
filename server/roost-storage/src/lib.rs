//! Roost's storage: the catalog (tenants, their tables, settings) and each tenant's isolated data, on
//! SQLite (a catalog file plus one database file per tenant under the data folder) or PostgreSQL (a
//! `roost` catalog schema plus one schema `t_<name>` per tenant).
//!
//! This crate owns every SQL statement Roost runs; tenant-table SQL comes from `roost-odata`'s renderer
//! or from [`ddl`]. It never knows HTTP. Control-plane changes bump a *generation* that every process
//! sharing the catalog observes (a counter in a file every process maps, on SQLite; on PostgreSQL a `NOTIFY` that every server
//! acknowledges before the change returns), so a change made with the CLI takes effect on a running
//! server at once.

pub mod accounts;
pub mod collation;
mod counter;
pub mod db;
pub mod ddl;
pub mod deadline;
pub mod identity;
pub mod items;
pub mod limits;
pub mod metrics;
pub mod packages;
pub mod pg_batch;
pub mod push;
pub mod scripts;
pub mod snapshot;
pub mod sqlite_engine;
pub mod tsql;

use db::Db;
use roost_api::{IdKind, TablePermissions, TenantSettings};
use roost_odata::sql::{ColType, Column, Dialect};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Errors of this crate; the server maps each to a protocol error.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A tenant, table, item or column was not found.
    #[error("not found")]
    NotFound,
    /// The name is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A unique id collided on insert.
    #[error("duplicate id")]
    Duplicate,
    /// Bad input detected by storage (identifier, type, …), with a client-facing message.
    #[error("{0}")]
    BadInput(String),
    /// A value could not be converted to its column's type (§2.8: "Bad request.").
    #[error("conversion failed")]
    Conversion,
    /// The query names a column the table does not have.
    #[error("Invalid column name specified in query.")]
    UnknownColumn(String),
    /// An id longer than 255 characters.
    #[error("id too long")]
    IdTooLong,
    /// A database error.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The catalog was migrated by a newer binary.
    #[error("{0}")]
    SchemaTooNew(String),
    /// A unique or primary key constraint refused a row (SQLite engine).
    #[error("unique constraint: {0}")]
    UniqueViolation(String),
    /// The database refused a statement because of its values or names (SQLite engine).
    #[error("database: {0}")]
    Database(String),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Anything else (I/O, corrupted catalog).
    #[error("{0}")]
    Internal(String),
    /// A statement ran past the deadline of its request and was interrupted.
    #[error("the statement was interrupted at its deadline")]
    Timeout,
}

impl StorageError {
    /// True if the database refused a duplicate key.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StorageError::Sql(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StorageError::UniqueViolation(_) => true,
            _ => false,
        }
    }
}

/// `Result` with [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Where the catalog lives.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Data folder (SQLite files, change counter).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; `None` for the embedded SQLite default.
    pub database_url: Option<String>,
    /// Connections in the PostgreSQL pool.
    pub pg_max_connections: u32,
    /// Start a LISTEN task for cross-process cache invalidation (servers, not the CLI).
    pub listen_for_changes: bool,
    /// PostgreSQL: no statement runs longer than this (`statement_timeout`), and a statement whose
    /// client went away is cancelled within a second (`client_connection_check_interval`).
    pub statement_timeout_ms: u64,
}

/// A tenant as stored in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    /// Lower-case name.
    pub name: String,
    /// Application key.
    pub application_key: String,
    /// Master key.
    pub master_key: String,
    /// Settings.
    pub settings: TenantSettings,
    /// Creation time, ISO-8601.
    pub created_at: String,
    /// The tier an admin put it on (empty: the server's default tier).
    pub tier: String,
}

/// A tenant table as stored in the catalog (its columns come from the database itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TableRecord {
    /// Stored casing.
    pub name: String,
    /// Id kind.
    pub id_kind: IdKind,
    /// `__deleted` present.
    pub soft_delete: bool,
    /// Permissions.
    pub permissions: TablePermissions,
}

/// A loaded table: catalog record plus its current columns.
#[derive(Debug)]
pub struct Table {
    /// Catalog record.
    pub record: TableRecord,
    columns: RwLock<Option<Arc<Vec<Column>>>>,
    /// How often each column was filtered or ordered on, and which were indexed (see `items.rs`).
    pub(crate) usage: Arc<std::sync::Mutex<HashMap<String, u32>>>,
}

impl Table {
    /// Column giving insertion order (R4).
    pub fn insertion_order(&self) -> &'static str {
        match self.record.id_kind {
            IdKind::String => ddl::SEQ,
            IdKind::Integer => "id",
        }
    }
}

/// A loaded tenant: catalog record, data connection and table cache.
#[derive(Debug)]
pub struct Tenant {
    /// Catalog record.
    pub record: TenantRecord,
    /// Where its data lives.
    pub db: Db,
    /// PostgreSQL schema; `None` on SQLite.
    pub schema: Option<String>,
    tables: HashMap<String, Arc<Table>>,
    /// Scripts by kind and lower-case name.
    scripts: HashMap<(scripts::ScriptKind, String), Arc<scripts::ScriptRecord>>,
    /// PostgreSQL: the batching front that groups concurrent inserts.
    pub(crate) inserter: Option<Arc<pg_batch::PgInserter>>,
    /// PostgreSQL: the share of the pool its queries may hold at once, so that one tenant's heavy
    /// queries never take every connection the other tenants need. (SQLite: each tenant has its
    /// own readers, bounded in `sqlite_engine`.)
    pub(crate) statements: Option<Arc<tokio::sync::Semaphore>>,
    /// Its npm dependencies (`package.json`, lock), if any.
    pub packages: Option<Arc<packages::PackageRecord>>,
    /// Its identity providers, by lower-case name.
    pub providers: Vec<Arc<identity::ProviderRecord>>,
    /// The secret its user tokens are signed with since they were last revoked (else the master key).
    pub token_secret: Option<String>,
}

impl Tenant {
    /// A slot for one PostgreSQL statement of this tenant (waited for until the deadline); none on SQLite.
    pub(crate) async fn statement_slot(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>> {
        match &self.statements {
            None => Ok(None),
            Some(s) => match tokio::time::timeout_at(deadline::current().into(), s.clone().acquire_owned()).await {
                Ok(Ok(p)) => Ok(Some(p)),
                Ok(Err(_)) => Err(StorageError::Internal("the statement slots were closed".into())),
                Err(_) => Err(StorageError::Timeout),
            },
        }
    }

    /// Looks a table up case-insensitively (R3).
    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.get(&name.to_ascii_lowercase()).cloned()
    }

    /// All tables, sorted by name.
    pub fn tables(&self) -> Vec<Arc<Table>> {
        let mut v: Vec<_> = self.tables.values().cloned().collect();
        v.sort_by_key(|t| t.record.name.to_ascii_lowercase());
        v
    }

    /// The dialect of this tenant's data.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// True if the tenant has any script (a request without one skips every script lookup).
    pub fn has_scripts(&self) -> bool {
        !self.scripts.is_empty()
    }

    /// The key its user tokens are signed and checked with (§5.3): the secret of its last
    /// revocation, else its master key (as Mobile Services did).
    pub fn token_key(&self) -> &str {
        self.token_secret.as_deref().unwrap_or(&self.record.master_key)
    }

    /// An identity provider by its `/login/{name}` name (case-insensitive).
    pub fn provider(&self, name: &str) -> Option<Arc<identity::ProviderRecord>> {
        self.providers.iter().find(|p| p.name.eq_ignore_ascii_case(name)).cloned()
    }

    /// A script by kind and name (case-insensitive).
    pub fn script(&self, kind: scripts::ScriptKind, name: &str) -> Option<Arc<scripts::ScriptRecord>> {
        self.scripts.get(&(kind, name.to_ascii_lowercase())).cloned()
    }

    /// All scripts, by kind then name.
    pub fn scripts(&self) -> Vec<Arc<scripts::ScriptRecord>> {
        let mut v: Vec<_> = self.scripts.values().cloned().collect();
        v.sort_by_key(|s| (s.kind, s.name.to_ascii_lowercase()));
        v
    }

    /// The table's columns (cached; `reload` forces a read from the database).
    pub async fn columns(&self, table: &Table, reload: bool) -> Result<Arc<Vec<Column>>> {
        if !reload {
            let cached = table.columns.read().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(c) = cached {
                return Ok(c);
            }
        }
        let cols = Arc::new(ddl::read_columns(&self.db, self.schema.as_deref(), &table.record.name).await?);
        *table.columns.write().unwrap_or_else(|e| e.into_inner()) = Some(cols.clone());
        Ok(cols)
    }
}

/// The storage of one Roost process.
#[derive(Debug)]
pub struct Storage {
    catalog: Db,
    data_dir: PathBuf,
    /// SQLite engines of tenants, opened once per process.
    pools: std::sync::Mutex<HashMap<String, Arc<sqlite_engine::SqliteEngine>>>,
    cache: RwLock<(u64, HashMap<String, Arc<Tenant>>)>,
    /// Bumped by this process's own changes and, on PostgreSQL, by NOTIFY from other processes.
    local_generation: Arc<AtomicU64>,
    /// SQLite: the data folder's change counter, shared with every process that opens it.
    shared_generation: Option<counter::SharedCounter>,
    /// PostgreSQL: groups concurrent inserts into multi-row statements.
    pg_inserter: Option<Arc<pg_batch::PgInserter>>,
    /// PostgreSQL: statements one tenant may have running at once (half the shared pool).
    pg_per_tenant: usize,
    /// Stops the change listener ([`Storage::close`]).
    stop: tokio_util::sync::CancellationToken,
}

/// Tenant names: a letter, then letters, digits or `-`, at most 48, stored lower-case.
pub fn is_valid_tenant_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && b.len() <= 48 && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The PostgreSQL schema of a tenant.
pub fn tenant_schema(name: &str) -> String {
    format!("t_{}", name.to_ascii_lowercase().replace('-', "_"))
}

pub(crate) fn now_iso() -> String {
    roost_odata::format_datetime(&chrono::Utc::now())
}

const CHANNEL: &str = "roost_catalog";
/// Servers answer each change notification on this channel once they have applied it.
const ACK_CHANNEL: &str = "roost_catalog_ack";
/// `application_name` of the servers' listener connections, which the changer counts.
const LISTENER_APP: &str = "roost-listener";
/// How long a change waits for every server to acknowledge it.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// The catalog migrations this binary knows: the newest one's version.
pub fn schema_version() -> i64 {
    // Both dialects have the same numbered migrations.
    sqlx::migrate!("../../migrations/sqlite").iter().map(|m| m.version).max().unwrap_or(0)
}

const APPLIED: &str = "select version from _sqlx_migrations where success";

/// A node whose binary is older than the catalog's schema refuses to start: it would read and write
/// tables whose shape it does not know.
fn refuse_newer_schema(migrator: &sqlx::migrate::Migrator, applied: Vec<i64>) -> Result<()> {
    let known: std::collections::HashSet<i64> = migrator.iter().map(|m| m.version).collect();
    let ours = known.iter().copied().max().unwrap_or(0);
    match applied.iter().copied().filter(|v| !known.contains(v)).max() {
        Some(newer) => Err(StorageError::SchemaTooNew(format!(
            "the catalog's schema is at migration {newer}, newer than this binary knows (it stops at {ours}): \
             a newer Roost migrated it. Upgrade this node to that version (or later) before starting it"
        ))),
        None => Ok(()),
    }
}

impl Storage {
    /// The catalog's newest applied migration (readiness: it must be this binary's).
    pub async fn applied_schema_version(&self) -> Result<i64> {
        let sql = "select coalesce(max(version), 0) from _sqlx_migrations where success";
        Ok(match &self.catalog {
            Db::Sqlite(p) => sqlx::query_as::<_, (i64,)>(sql).fetch_one(p).await?.0,
            Db::Postgres(p) => sqlx::query_as::<_, (i64,)>(sql).fetch_one(p).await?.0,
            Db::SqliteEngine(_) => return Err(StorageError::Internal("the catalog is never a tenant engine".into())),
        })
    }
}

impl Storage {
    /// Stops this process's background work on the catalog (the PostgreSQL change listener).
    pub fn close(&self) {
        self.stop.cancel();
    }

    /// Opens (and migrates) the catalog.
    pub async fn open(config: &StorageConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StorageError::Internal(format!("creating {}: {e}", config.data_dir.display())))?;
        let local_generation = Arc::new(AtomicU64::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let catalog = match &config.database_url {
            Some(url) => {
                // No ping before each acquire: it doubled the round trips of every statement. A broken
                // connection fails its statement and is discarded by the pool.
                let timeout = config.statement_timeout_ms.max(1000).to_string();
                let options = url
                    .parse::<sqlx::postgres::PgConnectOptions>()?
                    .options([("statement_timeout", timeout.as_str()), ("client_connection_check_interval", "1000")]);
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(config.pg_max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                // Migrations of several nodes starting at once serialize on sqlx's advisory lock
                // (`pg_advisory_lock`, held while one node migrates; the others then find nothing to do).
                let migrator = sqlx::migrate!("../../migrations/postgres");
                // The table is missing before the first migration: nothing applied.
                let applied = sqlx::query_as::<_, (i64,)>(APPLIED).fetch_all(&pool).await.unwrap_or_default();
                refuse_newer_schema(&migrator, applied.into_iter().map(|(v,)| v).collect())?;
                migrator.run(&pool).await?;
                if config.listen_for_changes {
                    spawn_listener(pool.clone(), local_generation.clone(), stop.clone());
                }
                Db::Postgres(pool)
            }
            None => {
                std::fs::create_dir_all(config.data_dir.join("tenants")).map_err(|e| StorageError::Internal(e.to_string()))?;
                let pool = sqlite_pool(&config.data_dir.join("catalog.db"), true, 2).await?;
                let migrator = sqlx::migrate!("../../migrations/sqlite");
                // The table is missing before the first migration: nothing applied.
                let applied = sqlx::query_as::<_, (i64,)>(APPLIED).fetch_all(&pool).await.unwrap_or_default();
                refuse_newer_schema(&migrator, applied.into_iter().map(|(v,)| v).collect())?;
                migrator.run(&pool).await?;
                Db::Sqlite(pool)
            }
        };
        let shared_generation = match &catalog {
            Db::Postgres(_) => None,
            _ => {
                let path = config.data_dir.join("catalog.counter");
                Some(counter::SharedCounter::open(&path).map_err(|e| StorageError::Internal(format!("opening {}: {e}", path.display())))?)
            }
        };
        let pg_inserter = match &catalog {
            Db::Postgres(p) => Some(Arc::new(pg_batch::PgInserter::start(p.clone()))),
            _ => None,
        };
        Ok(Self {
            pg_inserter,
            pg_per_tenant: (config.pg_max_connections as usize / 2).max(1),
            catalog,
            data_dir: config.data_dir.clone(),
            pools: Default::default(),
            cache: RwLock::new((u64::MAX, HashMap::new())),
            local_generation,
            shared_generation,
            stop,
        })
    }

    /// The catalog's dialect.
    pub fn dialect(&self) -> Dialect {
        self.catalog.dialect()
    }

    /// This node's data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The catalog pool (for health checks).
    pub fn catalog(&self) -> &Db {
        &self.catalog
    }

    /// A number that changes whenever any process changes the catalog.
    pub fn generation(&self) -> u64 {
        let local = self.local_generation.load(Ordering::Acquire);
        // SQLite: the CLI and the server share the data folder and its change counter, so every
        // process's caches stay exact.
        match &self.shared_generation {
            Some(shared) => local.wrapping_add(shared.load()),
            None => local,
        }
    }

    /// Tells every process that tenant data changed outside its own write path (a CLI that ran a
    /// script), so caches are dropped.
    pub async fn announce_change(&self) -> Result<()> {
        self.changed().await
    }

    /// Announces a catalog change to this and every other process.
    async fn changed(&self) -> Result<()> {
        self.local_generation.fetch_add(1, Ordering::AcqRel);
        match &self.catalog {
            Db::Postgres(p) => notify_and_wait_for_servers(p).await?,
            Db::Sqlite(_) | Db::SqliteEngine(_) => {
                if let Some(shared) = &self.shared_generation {
                    shared.bump();
                }
            }
        }
        Ok(())
    }

    /// Looks a tenant up (case-insensitively), from cache when the catalog has not changed.
    pub async fn tenant(&self, name: &str) -> Result<Option<Arc<Tenant>>> {
        let key = name.to_ascii_lowercase();
        let generation = self.generation();
        let hit = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if cache.0 == generation {
                cache.1.get(&key).cloned()
            } else {
                None
            }
        };
        if hit.is_some() {
            return Ok(hit);
        }
        let Some(record) = self.tenant_record(&key).await? else { return Ok(None) };
        let tenant = Arc::new(self.load_tenant(record).await?);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.0 != generation {
            *cache = (generation, HashMap::new());
        }
        cache.1.insert(key, tenant.clone());
        Ok(Some(tenant))
    }

    /// Drops cached state of one tenant after a change made by this process.
    fn forget(&self, name: &str) {
        self.cache.write().unwrap_or_else(|e| e.into_inner()).1.remove(&name.to_ascii_lowercase());
    }

    async fn load_tenant(&self, record: TenantRecord) -> Result<Tenant> {
        let (db, schema) = match &self.catalog {
            Db::Postgres(p) => (Db::Postgres(p.clone()), Some(tenant_schema(&record.name))),
            Db::Sqlite(_) | Db::SqliteEngine(_) => {
                // Loading happens after a catalog change: the schema may have changed under the cache.
                let engine = self.tenant_pool(&record.name, false)?;
                engine.invalidate();
                (Db::SqliteEngine(engine), None)
            }
        };
        let tables = self
            .table_records(&record.name)
            .await?
            .into_iter()
            .map(|r| (r.name.to_ascii_lowercase(), Arc::new(Table { record: r, columns: RwLock::new(None), usage: Default::default() })))
            .collect();
        let scripts = self.script_records(&record.name).await?.into_iter().map(|s| ((s.kind, s.name.to_ascii_lowercase()), Arc::new(s))).collect();
        let packages = self.package_record(&record.name).await?.map(Arc::new);
        let providers = self.providers(&record.name).await?.into_iter().map(Arc::new).collect();
        let token_secret = self.token_secret(&record.name).await?;
        let statements = (self.dialect() == Dialect::Postgres).then(|| Arc::new(tokio::sync::Semaphore::new(self.pg_per_tenant)));
        Ok(Tenant { record, db, schema, tables, scripts, inserter: self.pg_inserter.clone(), packages, providers, token_secret, statements })
    }

    pub(crate) fn tenant_file(&self, name: &str) -> PathBuf {
        self.data_dir.join("tenants").join(format!("{}.db", name.to_ascii_lowercase()))
    }

    fn tenant_pool(&self, name: &str, create: bool) -> Result<Arc<sqlite_engine::SqliteEngine>> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.get(name) {
            return Ok(p.clone());
        }
        let engine = Arc::new(sqlite_engine::SqliteEngine::open(&self.tenant_file(name), create)?);
        pools.insert(name.to_string(), engine.clone());
        Ok(engine)
    }

    fn close_tenant_pool(&self, name: &str) {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    async fn tenant_record(&self, name: &str) -> Result<Option<TenantRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select name, application_key, master_key, settings, tier, created_at from tenants where name = ?",
            Dialect::Postgres => "select name, application_key, master_key, settings, tier, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as created_at from roost.tenants where name = $1",
        };
        self.catalog_query::<TenantRow>(sql, &[name]).await?.into_iter().next().map(TenantRecord::try_from).transpose()
    }

    /// Runs a catalog query into typed rows (`#[derive(FromRow)]`, columns by name; binds are text,
    /// cast in the SQL where a column is not).
    pub(crate) async fn catalog_query<T>(&self, sql: &str, binds: &[&str]) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        match &self.catalog {
            Db::Sqlite(p) => {
                let mut q = sqlx::query_as::<_, T>(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                Ok(q.fetch_all(p).await?)
            }
            Db::Postgres(p) => {
                let mut q = sqlx::query_as::<_, T>(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                Ok(q.fetch_all(p).await?)
            }
            Db::SqliteEngine(_) => Err(StorageError::Internal("the catalog is never a tenant engine".into())),
        }
    }

    /// Runs a catalog query of one text column.
    pub(crate) async fn catalog_strings(&self, sql: &str, binds: &[&str]) -> Result<Vec<String>> {
        Ok(self.catalog_query::<(String,)>(sql, binds).await?.into_iter().map(|(s,)| s).collect())
    }

    pub(crate) async fn catalog_exec(&self, sql: &str, binds: &[&str]) -> Result<u64> {
        Ok(match &self.catalog {
            Db::Sqlite(p) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(p).await?.rows_affected()
            }
            Db::Postgres(p) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(p).await?.rows_affected()
            }
            Db::SqliteEngine(_) => return Err(StorageError::Internal("the catalog is never a tenant engine".into())),
        })
    }

    /// All tenants, by name.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select name, application_key, master_key, settings, tier, created_at from tenants order by name",
            Dialect::Postgres => "select name, application_key, master_key, settings, tier, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as created_at from roost.tenants order by name",
        };
        self.catalog_query::<TenantRow>(sql, &[]).await?.into_iter().map(TenantRecord::try_from).collect()
    }

    /// Creates a tenant and its isolated storage.
    pub async fn create_tenant(&self, name: &str, application_key: &str, master_key: &str, settings: &TenantSettings) -> Result<TenantRecord> {
        if !is_valid_tenant_name(name) {
            return Err(StorageError::BadInput(format!(
                "'{name}' is not a valid tenant name. A tenant name starts with a letter, has at most 48 characters, and contains only letters, digits and '-'."
            )));
        }
        let name = name.to_ascii_lowercase();
        if self.tenant_record(&name).await?.is_some() {
            return Err(StorageError::AlreadyExists(format!("Tenant '{name}'")));
        }
        let settings_json = serde_json::to_string(settings).map_err(|e| StorageError::Internal(e.to_string()))?;
        let created_at = now_iso();
        match &self.catalog {
            Db::Sqlite(_) | Db::SqliteEngine(_) => {
                // Create the data file first: a catalog row never points at missing storage.
                let path = self.tenant_file(&name);
                remove_sqlite_files(&path);
                self.close_tenant_pool(&name);
                self.tenant_pool(&name, true)?;
                let r = self
                    .catalog_exec(
                        "insert into tenants (name, application_key, master_key, settings, created_at) values (?, ?, ?, ?, ?)",
                        &[&name, application_key, master_key, &settings_json, &created_at],
                    )
                    .await;
                if let Err(e) = r {
                    self.close_tenant_pool(&name);
                    remove_sqlite_files(&path);
                    return Err(if e.is_unique_violation() { StorageError::AlreadyExists(format!("Tenant '{name}'")) } else { e });
                }
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let r = sqlx::query("insert into roost.tenants (name, application_key, master_key, settings) values ($1, $2, $3, $4)")
                    .bind(&name)
                    .bind(application_key)
                    .bind(master_key)
                    .bind(&settings_json)
                    .execute(&mut *tx)
                    .await;
                if let Err(e) = r {
                    let e = StorageError::from(e);
                    return Err(if e.is_unique_violation() { StorageError::AlreadyExists(format!("Tenant '{name}'")) } else { e });
                }
                let ddl = format!("create schema {}", roost_odata::sql::quote(&tenant_schema(&name)));
                sqlx::query(&ddl).execute(&mut *tx).await?;
                sqlx::query(&format!("create sequence {}", ddl::rowversion_sequence(&tenant_schema(&name)))).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        self.changed().await?;
        Ok(TenantRecord {
            name,
            application_key: application_key.to_string(),
            master_key: master_key.to_string(),
            settings: settings.clone(),
            created_at,
            tier: String::new(),
        })
    }

    /// Deletes a tenant and all its data.
    pub async fn delete_tenant(&self, name: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if self.tenant_record(&name).await?.is_none() {
            return Err(StorageError::NotFound);
        }
        match &self.catalog {
            Db::Sqlite(_) | Db::SqliteEngine(_) => {
                self.catalog_exec("delete from tenant_tables where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from tenant_scripts where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from script_logs where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from job_runs where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from tenant_owners where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from tenant_packages where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from identity_providers where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from tenant_token_secrets where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from push_registrations where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from push_credentials where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from push_sends where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from push_outbox where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from push_platform_credentials where tenant = ?", &[&name]).await?;
                self.catalog_exec("delete from tenants where name = ?", &[&name]).await?;
                self.close_tenant_pool(&name);
                remove_sqlite_files(&self.tenant_file(&name));
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("delete from roost.tenants where name = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.script_logs where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.job_runs where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.tenant_owners where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.tenant_packages where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.identity_providers where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.tenant_token_secrets where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.push_registrations where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.push_credentials where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.push_sends where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.push_outbox where tenant = $1").bind(&name).execute(&mut *tx).await?;
                sqlx::query("delete from roost.push_platform_credentials where tenant = $1").bind(&name).execute(&mut *tx).await?;
                let ddl = format!("drop schema if exists {} cascade", roost_odata::sql::quote(&tenant_schema(&name)));
                sqlx::query(&ddl).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        self.forget(&name);
        self.changed().await
    }

    /// Replaces a tenant's keys and settings.
    pub async fn update_tenant(&self, record: &TenantRecord) -> Result<()> {
        let settings = serde_json::to_string(&record.settings).map_err(|e| StorageError::Internal(e.to_string()))?;
        let sql = match self.dialect() {
            Dialect::Sqlite => "update tenants set application_key = ?, master_key = ?, settings = ? where name = ?",
            Dialect::Postgres => "update roost.tenants set application_key = $1, master_key = $2, settings = $3 where name = $4",
        };
        let n = self.catalog_exec(sql, &[&record.application_key, &record.master_key, &settings, &record.name]).await?;
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        self.forget(&record.name);
        self.changed().await
    }

    /// Puts a tenant on a tier (empty: the server's default); only an admin calls it.
    pub async fn set_tier(&self, tenant: &str, tier: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "update tenants set tier = ? where name = ?",
            Dialect::Postgres => "update roost.tenants set tier = $1 where name = $2",
        };
        if self.catalog_exec(sql, &[tier, &tenant.to_ascii_lowercase()]).await? == 0 {
            return Err(StorageError::NotFound);
        }
        self.forget(tenant);
        self.changed().await
    }

    async fn table_records(&self, tenant: &str) -> Result<Vec<TableRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select name, id_kind, soft_delete, permissions from tenant_tables where tenant = ? order by name",
            Dialect::Postgres => "select name, id_kind, soft_delete, permissions from roost.tenant_tables where tenant = $1 order by name_lower",
        };
        self.catalog_query::<TableRow>(sql, &[tenant])
            .await?
            .into_iter()
            .map(|r| {
                Ok(TableRecord {
                    id_kind: if r.id_kind == "integer" { IdKind::Integer } else { IdKind::String },
                    soft_delete: r.soft_delete,
                    permissions: serde_json::from_str(&r.permissions).map_err(|e| StorageError::Internal(format!("permissions of {}: {e}", r.name)))?,
                    name: r.name,
                })
            })
            .collect()
    }

    /// Creates a table in a tenant.
    pub async fn create_table(&self, tenant: &str, record: &TableRecord) -> Result<()> {
        if !roost_odata::is_valid_identifier(&record.name) {
            return Err(StorageError::BadInput(roost_odata::invalid_identifier_message(&record.name)));
        }
        // `sqlite_` names belong to SQLite itself (it refuses them), `pg_` ones to PostgreSQL's
        // catalog, `__` ones to Roost: refused alike on both backends.
        let lower = record.name.to_ascii_lowercase();
        if let Some(prefix) = ["__", "sqlite_", "pg_"].into_iter().find(|p| lower.starts_with(p)) {
            return Err(StorageError::BadInput(format!("'{}' is not a valid table name: names that begin with '{prefix}' are reserved.", record.name)));
        }
        let t = self.tenant(tenant).await?.ok_or(StorageError::NotFound)?;
        if t.table(&record.name).is_some() {
            return Err(StorageError::AlreadyExists(format!("Table '{}'", record.name)));
        }
        let perms = serde_json::to_string(&record.permissions).map_err(|e| StorageError::Internal(e.to_string()))?;
        let id_kind = match record.id_kind {
            IdKind::String => "string",
            IdKind::Integer => "integer",
        };
        ddl::create_table(&t.db, t.schema.as_deref(), record).await.map_err(|e| match e {
            StorageError::Sql(sqlx::Error::Database(d)) if d.message().contains("already exists") => {
                StorageError::AlreadyExists(format!("Table '{}'", record.name))
            }
            other => other,
        })?;
        let r = match self.dialect() {
            Dialect::Sqlite => {
                self.catalog_exec(
                    "insert into tenant_tables (tenant, name, id_kind, soft_delete, permissions, created_at) values (?, ?, ?, ?, ?, ?)",
                    &[&t.record.name, &record.name, id_kind, if record.soft_delete { "1" } else { "0" }, &perms, &now_iso()],
                )
                .await
            }
            Dialect::Postgres => {
                self.catalog_exec(
                    "insert into roost.tenant_tables (tenant, name, name_lower, id_kind, soft_delete, permissions) values ($1, $2, $3, $4, $5::boolean, $6)",
                    &[&t.record.name, &record.name, &record.name.to_ascii_lowercase(), id_kind, if record.soft_delete { "true" } else { "false" }, &perms],
                )
                .await
            }
        };
        if let Err(e) = r {
            // Keep the catalog and the data consistent: undo the DDL.
            let _ = ddl::drop_table(&t.db, t.schema.as_deref(), &record.name).await;
            return Err(if e.is_unique_violation() { StorageError::AlreadyExists(format!("Table '{}'", record.name)) } else { e });
        }
        self.forget(tenant);
        self.changed().await
    }

    /// Drops a table and its rows.
    pub async fn drop_table(&self, tenant: &str, table: &str) -> Result<()> {
        let t = self.tenant(tenant).await?.ok_or(StorageError::NotFound)?;
        let tbl = t.table(table).ok_or(StorageError::NotFound)?;
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from tenant_tables where tenant = ? and name = ?",
            Dialect::Postgres => "delete from roost.tenant_tables where tenant = $1 and name_lower = lower($2)",
        };
        self.catalog_exec(sql, &[&t.record.name, &tbl.record.name]).await?;
        ddl::drop_table(&t.db, t.schema.as_deref(), &tbl.record.name).await?;
        self.forget(tenant);
        self.changed().await
    }

    /// Replaces a table's permissions.
    pub async fn set_permissions(&self, tenant: &str, table: &str, permissions: &TablePermissions) -> Result<()> {
        let t = self.tenant(tenant).await?.ok_or(StorageError::NotFound)?;
        let tbl = t.table(table).ok_or(StorageError::NotFound)?;
        let perms = serde_json::to_string(permissions).map_err(|e| StorageError::Internal(e.to_string()))?;
        let sql = match self.dialect() {
            Dialect::Sqlite => "update tenant_tables set permissions = ? where tenant = ? and name = ?",
            Dialect::Postgres => "update roost.tenant_tables set permissions = $1 where tenant = $2 and name_lower = lower($3)",
        };
        self.catalog_exec(sql, &[&perms, &t.record.name, &tbl.record.name]).await?;
        self.forget(tenant);
        self.changed().await
    }

    /// Adds a column of a logical type (management, not dynamic schema).
    pub async fn add_column(&self, tenant: &str, table: &str, column: &str, ty: ColType) -> Result<()> {
        let t = self.tenant(tenant).await?.ok_or(StorageError::NotFound)?;
        let tbl = t.table(table).ok_or(StorageError::NotFound)?;
        if !roost_odata::is_valid_identifier(column) {
            return Err(StorageError::BadInput(roost_odata::invalid_identifier_message(column)));
        }
        if column.starts_with("__") || column.eq_ignore_ascii_case("id") {
            return Err(StorageError::BadInput(format!("The column '{column}' is reserved.")));
        }
        let cols = t.columns(&tbl, true).await?;
        if cols.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
            return Err(StorageError::AlreadyExists(format!("Column '{column}'")));
        }
        if cols.len() >= ddl::MAX_COLUMNS {
            return Err(StorageError::BadInput(format!("The table has {} columns; a table may have at most {}.", cols.len(), ddl::MAX_COLUMNS)));
        }
        ddl::add_columns(&t.db, t.schema.as_deref(), &tbl.record.name, &[Column { name: column.to_string(), ty }]).await?;
        self.forget(tenant);
        self.changed().await
    }

    /// Drops a user column.
    pub async fn drop_column(&self, tenant: &str, table: &str, column: &str) -> Result<()> {
        let t = self.tenant(tenant).await?.ok_or(StorageError::NotFound)?;
        let tbl = t.table(table).ok_or(StorageError::NotFound)?;
        let cols = t.columns(&tbl, true).await?;
        let col = cols.iter().find(|c| c.name.eq_ignore_ascii_case(column)).ok_or(StorageError::NotFound)?;
        if col.name.starts_with("__") || col.name == "id" {
            return Err(StorageError::BadInput(format!("The column '{}' is a system column and cannot be dropped.", col.name)));
        }
        ddl::drop_auto_index(&t.db, t.schema.as_deref(), &tbl.record.name, &col.name).await?;
        ddl::drop_column(&t.db, t.schema.as_deref(), &tbl.record.name, &col.name).await?;
        self.forget(tenant);
        self.changed().await
    }
}

/// A `tenants` row.
#[derive(sqlx::FromRow)]
struct TenantRow {
    name: String,
    application_key: String,
    master_key: String,
    settings: String,
    tier: String,
    created_at: String,
}

impl TryFrom<TenantRow> for TenantRecord {
    type Error = StorageError;
    fn try_from(r: TenantRow) -> Result<Self> {
        let settings = serde_json::from_str(&r.settings).map_err(|e| StorageError::Internal(format!("settings of tenant {}: {e}", r.name)))?;
        Ok(TenantRecord { name: r.name, application_key: r.application_key, master_key: r.master_key, settings, created_at: r.created_at, tier: r.tier })
    }
}

/// A `tenant_tables` row.
#[derive(sqlx::FromRow)]
struct TableRow {
    name: String,
    id_kind: String,
    soft_delete: bool,
    permissions: String,
}

fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Opens the SQLite catalog pool: WAL, `synchronous=FULL` (an acknowledged write survives power loss), busy timeout.
async fn sqlite_pool(path: &Path, create: bool, max: u32) -> Result<sqlx::SqlitePool> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .pragma("cache_size", "-512");
    Ok(SqlitePoolOptions::new().test_before_acquire(false).max_connections(max).min_connections(0).connect_with(opts).await?)
}

/// Announces a change and returns once every running server has applied it (or after `ACK_WAIT`,
/// with a warning): a change made with the CLI is in force on every node when the CLI exits.
async fn notify_and_wait_for_servers(pool: &sqlx::PgPool) -> Result<()> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut acks = sqlx::postgres::PgListener::connect_with(pool).await?;
    acks.listen(ACK_CHANNEL).await?;
    let servers: i64 = sqlx::query_scalar("select count(*) from pg_stat_activity where application_name = $1 and datname = current_database()")
        .bind(LISTENER_APP)
        .fetch_one(pool)
        .await?;
    sqlx::query("select pg_notify($1, $2)").bind(CHANNEL).bind(format!("changed:{nonce}")).execute(pool).await?;
    let deadline = tokio::time::Instant::now() + ACK_WAIT;
    let mut acknowledged = 0;
    while acknowledged < servers {
        match tokio::time::timeout_at(deadline, acks.recv()).await {
            Ok(Ok(n)) if n.payload() == nonce => acknowledged += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                tracing::warn!(
                    servers,
                    acknowledged,
                    "Not every server acknowledged a catalog change in time; the others apply it when the notification arrives"
                );
                break;
            }
        }
    }
    Ok(())
}

/// Listens for catalog changes made by other processes, bumps the generation, then acknowledges.
fn spawn_listener(pool: sqlx::PgPool, generation: Arc<AtomicU64>, stop: tokio_util::sync::CancellationToken) {
    // The listener's own connection carries an application name, so changers can count servers.
    let options = pool.connect_options().as_ref().clone().application_name(LISTENER_APP);
    let listen_pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_lazy_with(options);
    tokio::spawn(stop.clone().run_until_cancelled_owned(async move {
        loop {
            match sqlx::postgres::PgListener::connect_with(&listen_pool).await {
                Ok(mut l) => {
                    if l.listen(CHANNEL).await.is_ok() {
                        // Anything may have changed while we were not listening.
                        generation.fetch_add(1, Ordering::AcqRel);
                        while let Ok(n) = l.recv().await {
                            generation.fetch_add(1, Ordering::AcqRel);
                            if let Some(nonce) = n.payload().strip_prefix("changed:") {
                                let ack = sqlx::query("select pg_notify($1, $2)").bind(ACK_CHANNEL).bind(nonce).execute(&pool).await;
                                if let Err(e) = ack {
                                    tracing::warn!(error = %e, "Could not acknowledge a catalog change");
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Catalog listener could not connect; retrying"),
            }
            generation.fetch_add(1, Ordering::AcqRel);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }));
}
