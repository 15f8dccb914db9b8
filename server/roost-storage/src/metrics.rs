//! Monitoring in the catalog: each node's per-minute and per-hour counters of each tenant, active
//! device sketches per day, node heartbeats. A node replaces its own row of a bucket with its running
//! totals for that bucket at every roll-up (so a retried write never counts twice), and readers add
//! the nodes' rows up.

use crate::db::Db;
use crate::{Dialect, Result, Storage};

/// The grain of a metrics table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// `metrics_minute`: buckets are unix minutes.
    Minute,
    /// `metrics_hour`: buckets are unix hours.
    Hour,
}

impl Grain {
    fn table(self) -> &'static str {
        match self {
            Grain::Minute => "metrics_minute",
            Grain::Hour => "metrics_hour",
        }
    }
}

/// One node's counters of one tenant in one bucket (or, from [`Storage::metrics_totals`], the sum of
/// every node's; `node` is then empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct MetricsRow {
    pub tenant: String,
    pub bucket: i64,
    pub node: String,
    pub requests: i64,
    /// Answers with a 5xx status.
    pub errors: i64,
    /// Answers with a 4xx status.
    pub client_errors: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub script_invocations: i64,
    pub script_cpu_us: i64,
    pub script_errors: i64,
    pub limit_hits: i64,
    pub push_queued: i64,
    pub latency_us_sum: i64,
    /// The breakdowns, JSON (the server's `monitor` module reads and writes it).
    pub detail: String,
}

/// The summed columns, in order (the table's columns after `tenant, bucket, node`).
const SUMMED: [&str; 12] = [
    "requests",
    "errors",
    "client_errors",
    "bytes_in",
    "bytes_out",
    "script_invocations",
    "script_cpu_us",
    "script_errors",
    "limit_hits",
    "push_queued",
    "latency_us_sum",
    "detail",
];

/// A node's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    pub id: String,
    pub version: String,
    /// Epoch milliseconds.
    pub started_at: i64,
    /// Epoch milliseconds.
    pub heartbeat_at: i64,
    pub rss_bytes: i64,
    /// Tenants this node has served since it started.
    pub tenants: i64,
}

/// Placeholders `?` numbered for PostgreSQL, `{p}` the catalog schema's prefix.
fn sql(dialect: Dialect, text: &str) -> String {
    crate::push::dialect_sql(dialect, text)
}

macro_rules! bind_row {
    ($q:expr, $r:expr) => {
        $q.bind(&$r.tenant)
            .bind($r.bucket)
            .bind(&$r.node)
            .bind($r.requests)
            .bind($r.errors)
            .bind($r.client_errors)
            .bind($r.bytes_in)
            .bind($r.bytes_out)
            .bind($r.script_invocations)
            .bind($r.script_cpu_us)
            .bind($r.script_errors)
            .bind($r.limit_hits)
            .bind($r.push_queued)
            .bind($r.latency_us_sum)
            .bind(&$r.detail)
    };
}

impl Storage {
    /// Writes this node's running totals of the given buckets (one transaction).
    pub async fn upsert_metrics(&self, grain: Grain, rows: &[MetricsRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let updates: Vec<String> = SUMMED.iter().map(|c| format!("{c} = excluded.{c}")).collect();
        let text = format!(
            "insert into {{p}}{} (tenant, bucket, node, {}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (tenant, bucket, node) do update set {}",
            grain.table(),
            SUMMED.join(", "),
            updates.join(", ")
        );
        let text = sql(self.dialect(), &text);
        match &self.catalog {
            Db::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for r in rows {
                    bind_row!(sqlx::query(&text), r).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                for r in rows {
                    bind_row!(sqlx::query(&text), r).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::SqliteEngine(_) => {}
        }
        Ok(())
    }

    /// Every node's rows of a grain from bucket `from` on, of one tenant or of all, oldest first.
    pub async fn metrics_rows(&self, grain: Grain, tenant: Option<&str>, from: i64) -> Result<Vec<MetricsRow>> {
        let mut text = format!("select tenant, bucket, node, {} from {{p}}{} where bucket >= ?", SUMMED.join(", "), grain.table());
        if tenant.is_some() {
            text += " and tenant = ?";
        }
        text += " order by bucket, tenant, node";
        let text = sql(self.dialect(), &text);
        macro_rules! run {
            ($p:expr) => {{
                let mut q = sqlx::query_as::<_, MetricsRow>(&text).bind(from);
                if let Some(t) = tenant {
                    q = q.bind(t.to_ascii_lowercase());
                }
                q.fetch_all($p).await?
            }};
        }
        Ok(match &self.catalog {
            Db::Sqlite(p) => run!(p),
            Db::Postgres(p) => run!(p),
            Db::SqliteEngine(_) => Vec::new(),
        })
    }

    /// Each tenant's sums over every node per bucket (`per_bucket`) or over the whole range, from
    /// bucket `from` on; `detail` is left empty.
    pub async fn metrics_totals(&self, grain: Grain, from: i64, per_bucket: bool) -> Result<Vec<MetricsRow>> {
        let sums: Vec<String> = SUMMED[..SUMMED.len() - 1].iter().map(|c| format!("cast(sum({c}) as bigint) as {c}")).collect();
        let (bucket, group) = if per_bucket { ("bucket", "tenant, bucket") } else { ("cast(0 as bigint) as bucket", "tenant") };
        let text = format!(
            "select tenant, {bucket}, '' as node, {}, '' as detail from {{p}}{} where bucket >= ? group by {group} order by {group}",
            sums.join(", "),
            grain.table()
        );
        let text = sql(self.dialect(), &text);
        Ok(match &self.catalog {
            Db::Sqlite(p) => sqlx::query_as::<_, MetricsRow>(&text).bind(from).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_as::<_, MetricsRow>(&text).bind(from).fetch_all(p).await?,
            Db::SqliteEngine(_) => Vec::new(),
        })
    }

    /// Stores this node's device sketches: (tenant, day, node, registers).
    pub async fn upsert_devices(&self, rows: &[(String, i64, String, String)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let text = sql(
            self.dialect(),
            "insert into {p}metrics_devices (tenant, bucket, node, registers) values (?, ?, ?, ?) on conflict (tenant, bucket, node) do update set registers = excluded.registers",
        );
        macro_rules! run {
            ($p:expr) => {{
                let mut tx = $p.begin().await?;
                for (t, b, n, r) in rows {
                    sqlx::query(&text).bind(t).bind(*b).bind(n).bind(r).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }};
        }
        match &self.catalog {
            Db::Sqlite(p) => run!(p),
            Db::Postgres(p) => run!(p),
            Db::SqliteEngine(_) => {}
        }
        Ok(())
    }

    /// Every node's device sketches of a tenant from day `from` on: (day, registers).
    pub async fn devices(&self, tenant: &str, from: i64) -> Result<Vec<(i64, String)>> {
        let text = sql(self.dialect(), "select bucket, registers from {p}metrics_devices where tenant = ? and bucket >= ? order by bucket");
        Ok(match &self.catalog {
            Db::Sqlite(p) => sqlx::query_as(&text).bind(tenant.to_ascii_lowercase()).bind(from).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_as(&text).bind(tenant.to_ascii_lowercase()).bind(from).fetch_all(p).await?,
            Db::SqliteEngine(_) => Vec::new(),
        })
    }

    /// Records a node's heartbeat.
    pub async fn heartbeat(&self, n: &NodeRow) -> Result<()> {
        let text = sql(
            self.dialect(),
            "insert into {p}nodes (id, version, started_at, heartbeat_at, rss_bytes, tenants) values (?, ?, ?, ?, ?, ?) on conflict (id) do update set version = excluded.version, heartbeat_at = excluded.heartbeat_at, rss_bytes = excluded.rss_bytes, tenants = excluded.tenants",
        );
        macro_rules! run {
            ($p:expr) => {
                sqlx::query(&text).bind(&n.id).bind(&n.version).bind(n.started_at).bind(n.heartbeat_at).bind(n.rss_bytes).bind(n.tenants).execute($p).await?
            };
        }
        match &self.catalog {
            Db::Sqlite(p) => {
                run!(p);
            }
            Db::Postgres(p) => {
                run!(p);
            }
            Db::SqliteEngine(_) => {}
        }
        Ok(())
    }

    /// The nodes that sent a heartbeat, latest first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let text = sql(self.dialect(), "select id, version, started_at, heartbeat_at, rss_bytes, tenants from {p}nodes order by heartbeat_at desc");
        Ok(match &self.catalog {
            Db::Sqlite(p) => sqlx::query_as(&text).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_as(&text).fetch_all(p).await?,
            Db::SqliteEngine(_) => Vec::new(),
        })
    }

    /// Deletes minute rows before `minute`, hour rows before `hour`, device sketches before `day`
    /// and nodes silent since `node_ms`; returns the rows deleted.
    pub async fn prune_metrics(&self, minute: i64, hour: i64, day: i64, node_ms: i64) -> Result<u64> {
        let mut n = 0;
        for (table, before) in [("metrics_minute", minute), ("metrics_hour", hour), ("metrics_devices", day)] {
            let text = sql(self.dialect(), &format!("delete from {{p}}{table} where bucket < ?"));
            n += match &self.catalog {
                Db::Sqlite(p) => sqlx::query(&text).bind(before).execute(p).await?.rows_affected(),
                Db::Postgres(p) => sqlx::query(&text).bind(before).execute(p).await?.rows_affected(),
                Db::SqliteEngine(_) => 0,
            };
        }
        let text = sql(self.dialect(), "delete from {p}nodes where heartbeat_at < ?");
        n += match &self.catalog {
            Db::Sqlite(p) => sqlx::query(&text).bind(node_ms).execute(p).await?.rows_affected(),
            Db::Postgres(p) => sqlx::query(&text).bind(node_ms).execute(p).await?.rows_affected(),
            Db::SqliteEngine(_) => 0,
        };
        Ok(n)
    }

    /// The size of a tenant's data in bytes: its SQLite file with its write-ahead log, or the
    /// relations of its PostgreSQL schema.
    pub async fn tenant_database_bytes(&self, tenant: &str) -> Result<u64> {
        match &self.catalog {
            Db::Postgres(p) => {
                let (n,): (i64,) = sqlx::query_as(
                    "select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind in ('r', 'm')",
                )
                .bind(crate::tenant_schema(tenant))
                .fetch_one(p)
                .await?;
                Ok(n.max(0) as u64)
            }
            _ => {
                let path = self.tenant_file(tenant);
                let mut total = 0;
                for suffix in ["", "-wal"] {
                    let mut p = path.as_os_str().to_owned();
                    p.push(suffix);
                    total += std::fs::metadata(std::path::PathBuf::from(p)).map(|m| m.len()).unwrap_or(0);
                }
                Ok(total)
            }
        }
    }
}
