//! Group inserts for PostgreSQL: concurrent inserts into the same table with the same columns become
//! one multi-row `INSERT … ON CONFLICT ("id") DO NOTHING RETURNING "id", "__version"`, so N requests share one
//! statement, one round trip and one commit (one WAL flush). Each request is answered only after that
//! statement has committed, as with a statement of its own.
//!
//! A row whose id the statement did not return collided with an existing row (409). Two rows of one
//! batch with the same id (ids are case-insensitive) never share a statement. If a batch statement
//! fails, its rows are retried one at a time so each request gets its own outcome.

use crate::{Result, StorageError};
use roost_odata::sql::{quote, Builder, ColType, Dialect, Value};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Rows gathered into one statement at most (PostgreSQL allows 65535 parameters per statement).
const MAX_ROWS: usize = 256;
/// Batches executing at once.
const CONCURRENT_BATCHES: usize = 4;

/// One row to insert into a string-id table.
pub struct Row {
    /// Schema-qualified, quoted table name.
    pub table: String,
    /// Column names (the first is `id`).
    pub columns: Vec<String>,
    /// Values, one per column.
    pub values: Vec<Value>,
    /// The SQL giving the row's `__version` (the tenant's rowversion sequence), an extra column.
    pub version: String,
}

struct Job {
    row: Row,
    reply: oneshot::Sender<Result<Vec<u8>>>,
}

/// The batching front of one PostgreSQL pool.
#[derive(Debug)]
pub struct PgInserter {
    tx: mpsc::UnboundedSender<Job>,
}

impl PgInserter {
    /// Starts the batching task for `pool`.
    pub fn start(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Inserts one row and returns its `__version`; `Err(Duplicate)` if its id exists.
    pub async fn insert(&self, row: Row) -> Result<Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { row, reply }).map_err(|_| StorageError::Internal("the insert batcher has stopped".into()))?;
        rx.await.map_err(|_| StorageError::Internal("the insert batcher dropped a row".into()))?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Job>) {
    let permits = Arc::new(Semaphore::new(CONCURRENT_BATCHES));
    while let Some(first) = rx.recv().await {
        // While every batch slot is busy, rows keep queueing and the next batch grows.
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let mut jobs = vec![first];
        while jobs.len() < MAX_ROWS * CONCURRENT_BATCHES {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            run_jobs(&pool, jobs).await;
            drop(permit);
        });
    }
}

/// Splits jobs into statements: same table and columns, no id twice, at most `MAX_ROWS` rows.
/// Rows bound for one statement, with the (lower-cased) ids among them.
type Batch = (HashSet<String>, Vec<Job>);

async fn run_jobs(pool: &PgPool, jobs: Vec<Job>) {
    // Per (table, columns): batches, each with the (lower-cased) ids it holds.
    let mut groups: HashMap<(String, Vec<String>), Vec<Batch>> = HashMap::new();
    for job in jobs {
        let key = (job.row.table.clone(), job.row.columns.clone());
        let id = match job.row.values.first() {
            Some(Value::Text(s)) => s.to_lowercase(),
            _ => String::new(),
        };
        let batches = groups.entry(key).or_default();
        match batches.iter_mut().find(|(ids, b)| b.len() < MAX_ROWS && !ids.contains(&id)) {
            Some((ids, b)) => {
                ids.insert(id);
                b.push(job);
            }
            None => batches.push((HashSet::from([id]), vec![job])),
        }
    }
    for (_, batch) in groups.into_values().flatten() {
        run_batch(pool, batch).await;
    }
}

async fn run_batch(pool: &PgPool, batch: Vec<Job>) {
    let mut b = Builder::new(Dialect::Postgres);
    let first = &batch[0].row;
    b.push("INSERT INTO ").push(&first.table).push(" (");
    for (i, c) in first.columns.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.push(&quote(c));
    }
    b.push(", \"__version\") VALUES ");
    for (r, job) in batch.iter().enumerate() {
        b.push(if r == 0 { "(" } else { ", (" });
        for (i, v) in job.row.values.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.param(v.clone());
        }
        b.push(", ").push(&job.row.version).push(")");
    }
    b.push(" ON CONFLICT (\"id\") DO NOTHING RETURNING CAST(\"id\" AS text), \"__version\"");
    let db = crate::db::Db::Postgres(pool.clone());
    match db.fetch(&b.finish(), &[ColType::String, ColType::Binary]).await {
        Ok(rows) => {
            let mut inserted: HashMap<String, Vec<u8>> = rows
                .into_iter()
                .filter_map(|r| match <[Value; 2]>::try_from(r) {
                    Ok([Value::Text(s), Value::Bytes(v)]) => Some((s.to_lowercase(), v)),
                    _ => None,
                })
                .collect();
            for job in batch {
                let id = match job.row.values.first() {
                    Some(Value::Text(s)) => s.to_lowercase(),
                    _ => String::new(),
                };
                let _ = job.reply.send(inserted.remove(&id).ok_or(StorageError::Duplicate));
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(job) = batch.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
        Err(_) => {
            // Some row broke the statement: give every row its own, so each request gets its own answer.
            for job in batch {
                let one = vec![job];
                Box::pin(run_batch(pool, one)).await;
            }
        }
    }
}
