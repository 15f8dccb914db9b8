//! The SQLite engine for tenant data: one writer thread per tenant database doing **group commit**, and
//! a small pool of reader connections used in place.
//!
//! Why not sqlx here: sqlx hands every SQLite statement to a per-connection worker thread over a
//! channel, and commits each write on its own; with `synchronous=FULL` every commit is an fsync. The
//! writer below takes every write that is waiting, runs them all in one transaction and commits once,
//! answering each caller only after that commit: each acknowledged write is durable, and N writers
//! share one fsync. Reads start on the calling (async) thread with a pooled connection (WAL lets them
//! proceed while the writer commits) and a budget of [`INLINE_BUDGET`]: nearly every read is a short
//! indexed statement and ends within it. One that does not is interrupted and run again on a blocking
//! thread, at most [`SLOW_READS_PER_DB`] per database and [`SLOW_READS`] per process at once, so a
//! client's heavy query never holds an async worker (which every other tenant shares). Every
//! statement is interrupted at the deadline of its request ([`crate::deadline`]).
//!
//! Reads by id may be answered from a small result cache. Every cached result carries the *write
//! epoch* it was read at; the writer bumps the epoch after each commit and before answering, so no read
//! that starts after a write was acknowledged can see a result from before it. This is exact only while
//! one server process writes the database, which `roost serve` enforces with a lock on the data folder.

use crate::{Result, StorageError};
use roost_odata::sql::{ColType, Sql, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// Largest number of writes committed together.
const MAX_BATCH: usize = 512;
/// Idle reader connections kept per database.
const MAX_IDLE_READERS: usize = 4;
/// Cached read results per database (the cache is emptied when full).
const MAX_CACHED: usize = 16_384;
/// How long a read may run on an async worker before it moves to a blocking thread.
pub const INLINE_BUDGET: Duration = Duration::from_millis(2);
/// Reads of one database running on blocking threads at once.
pub const SLOW_READS_PER_DB: usize = 2;
/// Reads running on blocking threads at once, in the whole process.
pub const SLOW_READS: usize = 16;
/// SQLite VM instructions between two looks at the clock: few, because one instruction may be a
/// function call building a long string (`replace()` on a big value).
const PROGRESS_STEPS: i32 = 16;
/// The longest string or blob a tenant statement may produce (`replace()` on a big value, say).
const MAX_VALUE_BYTES: i32 = 64 * 1024 * 1024;

fn slow_reads() -> &'static tokio::sync::Semaphore {
    static S: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    S.get_or_init(|| tokio::sync::Semaphore::new(SLOW_READS))
}

/// Why a statement was interrupted.
enum Stop {
    /// Its inline budget ran out: run it again off the async workers.
    Budget,
    /// Its request's deadline passed, or its request was dropped.
    Deadline,
}

/// Runs `f` on `conn` with a progress handler that interrupts it at `budget` (then `Stop::Budget`)
/// or at `deadline` or when `cancelled` is set (then `Stop::Deadline`).
fn interruptible<T>(
    conn: &Connection,
    budget: Option<std::time::Instant>,
    deadline: std::time::Instant,
    cancelled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> std::result::Result<Result<T>, Stop> {
    use std::sync::atomic::{AtomicU8, Ordering};
    let why = std::sync::Arc::new(AtomicU8::new(0));
    let w = why.clone();
    conn.progress_handler(
        PROGRESS_STEPS,
        Some(move || {
            let now = std::time::Instant::now();
            if now >= deadline || cancelled.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                w.store(2, Ordering::Relaxed);
                return true;
            }
            if budget.is_some_and(|b| now >= b) {
                w.store(1, Ordering::Relaxed);
                return true;
            }
            false
        }),
    );
    let r = f(conn);
    conn.progress_handler(0, None::<fn() -> bool>);
    match why.load(Ordering::Relaxed) {
        1 if r.is_err() => Err(Stop::Budget),
        2 if r.is_err() => Err(Stop::Deadline),
        _ => Ok(r),
    }
}

/// Sets the cancel flag of an off-thread read when its caller goes away (the request timed out).
struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

type CacheMap = std::collections::HashMap<String, (u64, std::sync::Arc<Vec<Vec<Value>>>)>;

/// What a write job does.
enum Work {
    Execute(Sql),
    Fetch(Sql, Vec<ColType>),
    Raw(String),
}

/// The result of one job.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows changed.
    pub affected: u64,
    /// Rows returned (`RETURNING`).
    pub rows: Vec<Vec<Value>>,
}

struct Job {
    work: Work,
    reply: tokio::sync::oneshot::Sender<Result<Outcome>>,
    /// The deadline of the request that asked for it (its statement is interrupted then).
    deadline: std::time::Instant,
}

/// One tenant database.
#[derive(Debug)]
pub struct SqliteEngine {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    /// Reads of this database on blocking threads ([`SLOW_READS_PER_DB`]).
    slow: tokio::sync::Semaphore,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cache: Mutex<CacheMap>,
}

fn open(path: &Path, create: bool, synchronous_full: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(db_error)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(db_error)?;
    // A small page cache per connection keeps the server's memory low; the OS caches the file.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA cache_size = -1024; PRAGMA temp_store = MEMORY;",
        if synchronous_full { "FULL" } else { "NORMAL" }
    ))
    .map_err(db_error)?;
    if synchronous_full {
        // The writer checkpoints less often: a checkpoint inside a commit makes that commit's callers wait.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 8000;").map_err(db_error)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
    crate::collation::register(&conn).map_err(db_error)?;
    Ok(conn)
}

/// The writer's rowversion counter (`ddl::ROWVERSION`): the last version handed out. The function
/// `roost_rowversion()` (writer connection only) advances it when a statement runs, so versions follow
/// the order of writes; the writer stores it in the same transaction as the writes that used it, so
/// it never goes back across restarts.
struct Rowversion {
    last: std::sync::Arc<std::sync::atomic::AtomicI64>,
    stored: i64,
}

impl Rowversion {
    /// Stores the counter if writes advanced it (inside the open write transaction).
    fn store(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
        if last != self.stored {
            conn.prepare_cached(&format!("UPDATE \"{}\" SET v = ?", crate::ddl::ROWVERSION))?.execute([last])?;
            self.stored = last;
        }
        Ok(())
    }
}

/// Prepares the writer connection: the rowversion counter and its function, and the upgrade of a
/// database written by an older Roost (string columns under `NOCASE`, random versions).
fn prepare_writer(conn: &Connection) -> Result<Rowversion> {
    use rusqlite::functions::FunctionFlags;
    use std::sync::atomic::{AtomicI64, Ordering};
    let table = crate::ddl::ROWVERSION;
    let last = std::sync::Arc::new(AtomicI64::new(0));
    let f = last.clone();
    conn.create_scalar_function("roost_rowversion", 0, FunctionFlags::SQLITE_UTF8, move |_| Ok((f.fetch_add(1, Ordering::Relaxed) + 1).to_be_bytes().to_vec()))
        .map_err(db_error)?;
    // After a restore wrote versions as they were: later writes go past them.
    let f = last.clone();
    conn.create_scalar_function("roost_rowversion_at_least", 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
        let n: i64 = ctx.get(0)?;
        Ok(f.fetch_max(n, Ordering::Relaxed).max(n))
    })
    .map_err(db_error)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_error)?;
    let r = (|| -> rusqlite::Result<i64> {
        let exists: bool = conn.query_row("SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?", [table], |r| r.get(0))?;
        for name in conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%COLLATE NOCASE%'")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
        {
            recollate(conn, &name)?;
        }
        if exists {
            return conn.query_row(&format!("SELECT v FROM \"{table}\""), [], |r| r.get(0));
        }
        conn.execute_batch(&format!("CREATE TABLE \"{table}\" (v INTEGER NOT NULL); INSERT INTO \"{table}\" (v) VALUES (0)"))?;
        // Versions from before rowversions were random: renumber each table's rows in the order of their
        // last writes, so `$orderby=__version` holds for them too.
        let tables: Vec<String> = conn
            .prepare(
                "SELECT m.name FROM sqlite_schema m WHERE m.type = 'table' AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = '__version')",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut n: i64 = 0;
        for t in tables {
            let q = roost_odata::sql::quote(&t);
            let seqs: Vec<i64> = conn
                .prepare(&format!("SELECT \"__seq\" FROM {q} ORDER BY \"__updatedAt\", \"__seq\""))?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut update = conn.prepare(&format!("UPDATE {q} SET \"__version\" = ? WHERE \"__seq\" = ?"))?;
            for seq in seqs {
                n += 1;
                update.execute(rusqlite::params![n.to_be_bytes().to_vec(), seq])?;
            }
        }
        conn.execute(&format!("UPDATE \"{table}\" SET v = ?"), [n])?;
        Ok(n)
    })();
    match r.and_then(|v| conn.execute_batch("COMMIT").map(|()| v)) {
        Ok(v) => {
            last.store(v, Ordering::Relaxed);
            Ok(Rowversion { last, stored: v })
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(db_error(e))
        }
    }
}

/// Rebuilds a table whose string columns use SQLite's `NOCASE` with the tenant collation, keeping
/// its rows, its indexes and its AUTOINCREMENT high-water mark (SQLite cannot change a column's
/// collation in place: the "generalized ALTER TABLE procedure" of its documentation).
fn recollate(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    let collation = roost_odata::sql::SQLITE_COLLATION;
    let q = roost_odata::sql::quote(name);
    let sql: String = conn.query_row("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", [name], |r| r.get(0))?;
    let Some(body) = sql.find('(').map(|i| &sql[i..]) else { return Ok(()) };
    let indexes: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL")?
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let high_water: Option<i64> =
        if body.contains("AUTOINCREMENT") { conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = ?", [name], |r| r.get(0)).ok() } else { None };
    let tmp = "\"__recollate\"";
    conn.execute_batch(&format!(
        "CREATE TABLE {tmp} {}; INSERT INTO {tmp} SELECT * FROM {q}; DROP TABLE {q}; ALTER TABLE {tmp} RENAME TO {q};",
        body.replace("COLLATE NOCASE", &format!("COLLATE {collation}"))
    ))?;
    for ix in indexes {
        conn.execute_batch(&ix)?;
    }
    if let Some(seq) = high_water {
        conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", rusqlite::params![seq, name])?;
    }
    tracing::info!(table = name, "Rebuilt a table with the tenant string collation");
    Ok(())
}

/// Maps a SQLite error: constraint violations keep their kind, the rest are database errors.
pub(crate) fn db_error(e: rusqlite::Error) -> StorageError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let message = msg.clone().unwrap_or_else(|| f.to_string());
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY {
                StorageError::UniqueViolation(message)
            } else if matches!(
                f.code,
                rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TypeMismatch | rusqlite::ErrorCode::Unknown | rusqlite::ErrorCode::TooBig
            ) {
                // The statement or its values were refused: the client's doing (§4.2 "Bad request.").
                StorageError::Database(message)
            } else {
                // Corruption, I/O, locking, a file that cannot be opened: the server's problem (500).
                StorageError::Internal(format!("{}: {message}", f.extended_code))
            }
        }
        _ => StorageError::Internal(e.to_string()),
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => SqlValue::Real(*n),
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Date(d) => SqlValue::Text(roost_odata::format_datetime(d)),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

pub(crate) fn decode(v: ValueRef<'_>, ty: ColType) -> Value {
    match (v, ty) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Text(t), ColType::Date) => {
            let s = String::from_utf8_lossy(t);
            roost_odata::parse_loose_datetime(&s).map_or_else(|| Value::Text(s.into_owned()), Value::Date)
        }
        (ValueRef::Text(t), ColType::Number) => String::from_utf8_lossy(t).trim().parse().map_or(Value::Null, Value::Number),
        (ValueRef::Text(t), _) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        (ValueRef::Integer(i), ColType::Number) => Value::Number(i as f64),
        (ValueRef::Integer(i), ColType::Boolean) => Value::Bool(i != 0),
        (ValueRef::Integer(i), ColType::String) => Value::Text(i.to_string()),
        (ValueRef::Integer(i), _) => Value::Int(i),
        (ValueRef::Real(f), ColType::Boolean) => Value::Bool(f != 0.0),
        (ValueRef::Real(f), ColType::Integer) => Value::Int(f as i64),
        (ValueRef::Real(f), ColType::String) => Value::Text(crate::items::js_number(f)),
        (ValueRef::Real(f), _) => Value::Number(f),
        (ValueRef::Blob(b), ColType::String) => Value::Text(String::from_utf8_lossy(b).into_owned()),
        (ValueRef::Blob(b), _) => Value::Bytes(b.to_vec()),
    }
}

fn fetch_on(conn: &Connection, sql: &Sql, types: &[ColType]) -> Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(db_error)?;
    let params: Vec<SqlValue> = sql.params.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(db_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let mut r = Vec::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            r.push(decode(row.get_ref(i).map_err(db_error)?, *t));
        }
        out.push(r);
    }
    Ok(out)
}

fn run_job(conn: &Connection, work: &Work) -> Result<Outcome> {
    match work {
        Work::Execute(sql) => {
            let mut stmt = conn.prepare_cached(&sql.text).map_err(db_error)?;
            let params: Vec<SqlValue> = sql.params.iter().map(to_sql).collect();
            let n = stmt.execute(rusqlite::params_from_iter(params.iter())).map_err(db_error)?;
            Ok(Outcome { affected: n as u64, rows: Vec::new() })
        }
        Work::Fetch(sql, types) => {
            let rows = fetch_on(conn, sql, types)?;
            Ok(Outcome { affected: rows.len() as u64, rows })
        }
        // A batch of statements (DDL) is all or nothing: one that fails undoes those before it.
        Work::Raw(text) => {
            conn.execute_batch("SAVEPOINT roost_raw").map_err(db_error)?;
            match conn.execute_batch(text) {
                Ok(()) => {
                    conn.execute_batch("RELEASE roost_raw").map_err(db_error)?;
                    Ok(Outcome::default())
                }
                Err(e) => {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK TO roost_raw; RELEASE roost_raw");
                    }
                    Err(db_error(e))
                }
            }
        }
    }
}

/// The writer loop: take what is queued, run it in one transaction, commit once, then answer.
fn writer_loop(conn: Connection, mut version: Rowversion, rx: mpsc::Receiver<Job>, epoch: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::Ordering;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = db_error(e);
            for j in batch {
                let _ = j.reply.send(Err(StorageError::Internal(format!("starting a transaction: {e}"))));
            }
            continue;
        }
        let mut done: Vec<(Job, Result<Outcome>)> = Vec::with_capacity(batch.len());
        let run = |job: &Job| interruptible(&conn, None, job.deadline, None, |c| run_job(c, &job.work)).unwrap_or(Err(StorageError::Timeout));
        for job in batch {
            let r = run(&job);
            if r.is_err() && conn.is_autocommit() {
                // The error (or an interruption) rolled the whole transaction back: the jobs before it
                // are run again in a new one.
                let _ = job.reply.send(r);
                if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                    tracing::error!(error = %e, "Could not restart a write transaction");
                }
                let redo: Vec<Job> = done.drain(..).map(|(j, _)| j).collect();
                for j in redo {
                    let r = run(&j);
                    done.push((j, r));
                }
                continue;
            }
            done.push((job, r));
        }
        let committed =
            version.store(&conn).map_err(db_error).and_then(|()| if conn.is_autocommit() { Ok(()) } else { conn.execute_batch("COMMIT").map_err(db_error) });
        // Before anyone hears of these writes, cached reads from before them become stale.
        epoch.fetch_add(1, Ordering::AcqRel);
        match committed {
            Ok(()) => {
                for (j, r) in done {
                    let _ = j.reply.send(r);
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                for (j, _) in done {
                    let _ = j.reply.send(Err(StorageError::Internal(format!("commit failed: {e}"))));
                }
            }
        }
    }
}

impl SqliteEngine {
    /// Opens (or creates) a tenant database and starts its writer thread.
    pub fn open(path: &Path, create: bool) -> Result<Self> {
        let writer_conn = open(path, create, true)?;
        let version = prepare_writer(&writer_conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let name = format!("roost-writer-{}", path.file_stem().and_then(|s| s.to_str()).unwrap_or("db"));
        let epoch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer_epoch = epoch.clone();
        std::thread::Builder::new()
            .name(name)
            .stack_size(256 * 1024)
            .spawn(move || writer_loop(writer_conn, version, rx, writer_epoch))
            .map_err(|e| StorageError::Internal(format!("starting the writer thread: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(tx),
            readers: Mutex::new(Vec::new()),
            slow: tokio::sync::Semaphore::new(SLOW_READS_PER_DB),
            epoch,
            cache: Mutex::new(CacheMap::new()),
        })
    }

    async fn submit(&self, work: Work) -> Result<Outcome> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Job { work, reply, deadline: crate::deadline::current() })
            .map_err(|_| StorageError::Internal("the writer thread has stopped".into()))?;
        rx.await.map_err(|_| StorageError::Internal("the writer thread dropped a write".into()))?
    }

    /// Runs a write; returns the rows changed once it is committed.
    pub async fn execute(&self, sql: &Sql) -> Result<u64> {
        Ok(self.submit(Work::Execute(sql.clone())).await?.affected)
    }

    /// Runs a write that returns rows (`RETURNING`), committed.
    pub async fn write_fetch(&self, sql: &Sql, types: &[ColType]) -> Result<Vec<Vec<Value>>> {
        Ok(self.submit(Work::Fetch(sql.clone(), types.to_vec())).await?.rows)
    }

    /// Runs DDL through the writer (serialised with every other write).
    pub async fn execute_raw(&self, text: &str) -> Result<()> {
        self.submit(Work::Raw(text.to_string())).await.map(|_| ())
    }

    /// Forgets every cached result (another process changed the schema).
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Like [`Self::fetch`], answered from the cache when nothing was written since it was cached.
    pub async fn fetch_cached(self: &std::sync::Arc<Self>, sql: &Sql, types: &[ColType]) -> Result<std::sync::Arc<Vec<Vec<Value>>>> {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering;
        let mut key = String::with_capacity(sql.text.len() + 48);
        key.push_str(&sql.text);
        for p in &sql.params {
            key.push('\u{0}');
            match p {
                Value::Text(t) => key.push_str(t),
                Value::Int(i) => {
                    let _ = write!(key, "i{i}");
                }
                other => {
                    let _ = write!(key, "{other:?}");
                }
            }
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some((e, rows)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if *e == epoch {
                return Ok(rows.clone());
            }
        }
        let rows = std::sync::Arc::new(self.fetch(sql, types).await?);
        // Only a result read entirely within one epoch may be cached.
        if self.epoch.load(Ordering::Acquire) == epoch {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, (epoch, rows.clone()));
        }
        Ok(rows)
    }

    /// Runs a read whose columns are not known in advance (`mssql`): names and values, each decoded
    /// by its declared column type, or by its stored type for expressions.
    pub async fn fetch_dynamic(self: &std::sync::Arc<Self>, sql: &Sql) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        self.read(sql, &[], |conn, sql, _| fetch_dynamic_on(conn, sql)).await
    }

    /// Runs a read on a pooled reader connection: inline within [`INLINE_BUDGET`], else on a
    /// blocking thread; interrupted at the deadline.
    pub async fn fetch(self: &std::sync::Arc<Self>, sql: &Sql, types: &[ColType]) -> Result<Vec<Vec<Value>>> {
        self.read(sql, types, fetch_on).await
    }

    fn reader(&self) -> Result<Connection> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => open(&self.path, false, false),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }

    /// Runs `f` on a reader: inline first, then (with copies of its inputs) on a blocking thread.
    async fn read<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        sql: &Sql,
        types: &[ColType],
        f: fn(&Connection, &Sql, &[ColType]) -> Result<T>,
    ) -> Result<T> {
        let deadline = crate::deadline::current();
        let conn = self.reader()?;
        let budget = std::time::Instant::now() + INLINE_BUDGET;
        let first = interruptible(&conn, Some(budget), deadline, None, |c| f(c, sql, types));
        self.give_back(conn);
        match first {
            Ok(r) => return r,
            Err(Stop::Deadline) => return Err(StorageError::Timeout),
            Err(Stop::Budget) => {}
        }
        // A long read: off the async workers, within this database's and the process's bounds.
        let _db = tokio::time::timeout_at(deadline.into(), self.slow.acquire()).await.map_err(|_| StorageError::Timeout)?;
        let _all = tokio::time::timeout_at(deadline.into(), slow_reads().acquire()).await.map_err(|_| StorageError::Timeout)?;
        let cancelled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _cancel = CancelOnDrop(cancelled.clone());
        let (me, sql, types) = (self.clone(), sql.clone(), types.to_vec());
        tokio::task::spawn_blocking(move || {
            let conn = me.reader()?;
            let r = interruptible(&conn, None, deadline, Some(cancelled), |c| f(c, &sql, &types));
            me.give_back(conn);
            r.unwrap_or(Err(StorageError::Timeout))
        })
        .await
        .map_err(|e| StorageError::Internal(format!("a read thread failed: {e}")))?
    }
}

fn fetch_dynamic_on(conn: &Connection, sql: &Sql) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let mut stmt = conn.prepare(&sql.text).map_err(db_error)?;
    let cols: Vec<(String, Option<ColType>)> = stmt
        .columns()
        .iter()
        .map(|c| {
            let ty = c.decl_type().map(|d| d.to_ascii_uppercase()).and_then(|d| match d.split_whitespace().next().unwrap_or("") {
                "DATETIMEOFFSET" => Some(ColType::Date),
                "BOOLEAN" => Some(ColType::Boolean),
                "REAL" => Some(ColType::Number),
                "INTEGER" => Some(ColType::Integer),
                "BLOB" => Some(ColType::Binary),
                "TEXT" => Some(ColType::String),
                _ => None,
            });
            (c.name().to_string(), ty)
        })
        .collect();
    let params: Vec<SqlValue> = sql.params.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(db_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let mut r = Vec::with_capacity(cols.len());
        for (i, (_, ty)) in cols.iter().enumerate() {
            let v = row.get_ref(i).map_err(db_error)?;
            r.push(match ty {
                Some(t) => decode(v, *t),
                None => match v {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(f) => Value::Number(f),
                    // An expression's text in the stored date format (GETUTCDATE()) is a date.
                    ValueRef::Text(t) => {
                        let s = String::from_utf8_lossy(t);
                        match roost_odata::parse_strict_datetime(&s).filter(|_| s.len() == 24 && s.ends_with('Z')) {
                            Some(d) => Value::Date(d),
                            None => Value::Text(s.into_owned()),
                        }
                    }
                    ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                },
            });
        }
        out.push(r);
    }
    Ok((cols.into_iter().map(|(n, _)| n).collect(), out))
}
