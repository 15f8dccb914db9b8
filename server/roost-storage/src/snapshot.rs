//! A tenant's tables read as one consistent snapshot (for backups), and rows written back with
//! their ids and system properties as they were (for restores).
//!
//! The snapshot is one read transaction: on SQLite a connection of its own in WAL mode (writers go
//! on; the reader sees the database as it was when it began), on PostgreSQL a `REPEATABLE READ READ
//! ONLY` transaction. Rows stream through a bounded channel, so memory stays constant however large
//! the tenant is.

use crate::{Result, StorageError, Table, TableRecord, Tenant};
use roost_api::IdKind;
use roost_odata::sql::{Builder, ColType, Column, Dialect, Sql, TableRef, Value};
use std::sync::Arc;
use tokio::sync::mpsc::Sender;

/// What a snapshot yields, in order: each table, then its rows (values in the table's column order).
#[derive(Debug)]
pub enum Snap {
    /// A table and its columns (system columns included, `__seq` not).
    Table(TableRecord, Vec<Column>),
    /// One row of the last table.
    Row(Vec<Value>),
}

fn select_sql(d: Dialect, schema: Option<&str>, table: &Table, columns: &[Column]) -> String {
    let mut b = Builder::new(d);
    b.push("SELECT ");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.ident(&c.name);
    }
    b.push(" FROM ");
    TableRef { schema, name: &table.record.name }.render(&mut b);
    b.push(" ORDER BY ").ident(table.insertion_order());
    b.finish().text
}

impl crate::Storage {
    /// [`Tenant::snapshot`] of a tenant of this storage.
    pub async fn snapshot(&self, tenant: &Arc<Tenant>, out: Sender<Result<Snap>>) -> Result<()> {
        let file = (tenant.dialect() == Dialect::Sqlite).then(|| self.tenant_file(&tenant.record.name));
        tenant.snapshot(file, out).await
    }
}

impl Tenant {
    /// Streams every table of the tenant, and its rows, from one snapshot into `out`. A closed
    /// channel stops it.
    pub async fn snapshot(self: &Arc<Self>, tenant_file: Option<std::path::PathBuf>, out: Sender<Result<Snap>>) -> Result<()> {
        let mut tables = Vec::new();
        for t in self.tables() {
            let cols = self.columns(&t, true).await?;
            tables.push((t, cols));
        }
        match &self.db {
            crate::db::Db::Postgres(pool) => {
                use futures::TryStreamExt as _;
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
                for (t, cols) in &tables {
                    if out.send(Ok(Snap::Table(t.record.clone(), cols.to_vec()))).await.is_err() {
                        return Ok(());
                    }
                    let sql = select_sql(Dialect::Postgres, self.schema.as_deref(), t, cols);
                    let mut rows = sqlx::query(&sql).fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await? {
                        let mut values = Vec::with_capacity(cols.len());
                        for (i, c) in cols.iter().enumerate() {
                            values.push(crate::db::decode_pg(&row, i, c.ty)?);
                        }
                        if out.send(Ok(Snap::Row(values))).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            _ => {
                let path = tenant_file.ok_or_else(|| StorageError::Internal("no tenant file".into()))?;
                tokio::task::spawn_blocking(move || {
                    use crate::sqlite_engine::{db_error, decode};
                    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = rusqlite::Connection::open_with_flags(&path, flags).map_err(db_error)?;
                    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_error)?;
                    crate::collation::register(&conn).map_err(db_error)?;
                    // One read transaction: its first read fixes the snapshot every later read sees.
                    conn.execute_batch("BEGIN DEFERRED").map_err(db_error)?;
                    for (t, cols) in &tables {
                        if out.blocking_send(Ok(Snap::Table(t.record.clone(), cols.to_vec()))).is_err() {
                            return Ok(());
                        }
                        let mut stmt = conn.prepare(&select_sql(Dialect::Sqlite, None, t, cols)).map_err(db_error)?;
                        let mut rows = stmt.query([]).map_err(db_error)?;
                        while let Some(row) = rows.next().map_err(db_error)? {
                            let mut values = Vec::with_capacity(cols.len());
                            for (i, c) in cols.iter().enumerate() {
                                values.push(decode(row.get_ref(i).map_err(db_error)?, c.ty));
                            }
                            if out.blocking_send(Ok(Snap::Row(values))).is_err() {
                                return Ok(());
                            }
                        }
                    }
                    conn.execute_batch("COMMIT").map_err(db_error)?;
                    Ok(())
                })
                .await
                .map_err(|e| StorageError::Internal(e.to_string()))?
            }
        }
    }

    /// Writes rows as they were (ids, system properties and all), in one statement per batch.
    pub async fn restore_rows(&self, table: &Table, columns: &[Column], rows: Vec<Vec<Value>>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let d = self.dialect();
        let mut b = Builder::new(d);
        b.push("INSERT INTO ");
        TableRef { schema: self.schema.as_deref(), name: &table.record.name }.render(&mut b);
        b.push(" (");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.ident(&c.name);
        }
        b.push(") VALUES ");
        for (r, row) in rows.into_iter().enumerate() {
            if row.len() != columns.len() {
                return Err(StorageError::BadInput(format!("a row of {} has {} values for {} columns", table.record.name, row.len(), columns.len())));
            }
            if r > 0 {
                b.push(", ");
            }
            b.push("(");
            for (i, (v, c)) in row.into_iter().zip(columns).enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.param(crate::items::coerce(v, c.ty)?);
            }
            b.push(")");
        }
        self.db.execute(&b.finish()).await?;
        Ok(())
    }

    /// After restoring a table: new ids continue after the largest (integer ids on PostgreSQL), and the
    /// tenant's rowversion goes past every restored `__version` (string ids). Versions that cannot be
    /// a rowversion (an archive from a Roost whose versions were random) are renewed instead.
    pub async fn restore_finish(&self, table: &Table) -> Result<()> {
        if table.record.id_kind == IdKind::String {
            return self.restore_versions(table).await;
        }
        if self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        let mut b = Builder::new(Dialect::Postgres);
        TableRef { schema: self.schema.as_deref(), name: &table.record.name }.render(&mut b);
        let qualified = b.finish().text;
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{}', 'id'), coalesce((SELECT max(\"id\") FROM {qualified}), 0) + 1, false)",
            qualified.replace('\'', "''")
        );
        self.db.execute_raw(&sql).await
    }

    async fn restore_versions(&self, table: &Table) -> Result<()> {
        let d = self.dialect();
        let mut b = Builder::new(d);
        TableRef { schema: self.schema.as_deref(), name: &table.record.name }.render(&mut b);
        let qualified = b.finish().text;
        let max = self
            .db
            .fetch(&Sql { text: format!("SELECT \"__version\" FROM {qualified} ORDER BY \"__version\" DESC LIMIT 1"), params: Vec::new() }, &[ColType::Binary])
            .await?;
        let max = match max.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Value::Bytes(v)) => v,
            _ => return Ok(()),
        };
        let counter = <[u8; 8]>::try_from(max.as_slice()).ok().map(i64::from_be_bytes).filter(|n| (0..1 << 62).contains(n));
        match (counter, d) {
            (Some(n), Dialect::Sqlite) => {
                let sql = Sql { text: "SELECT roost_rowversion_at_least(?)".into(), params: vec![Value::Int(n)] };
                self.db.write_fetch(&sql, &[ColType::Integer]).await?;
            }
            (Some(n), Dialect::Postgres) => {
                let seq = crate::ddl::rowversion_sequence(self.schema.as_deref().unwrap_or_default()).replace('\'', "''");
                let sql = format!("SELECT setval('{seq}', greatest({}, (SELECT CASE WHEN is_called THEN last_value ELSE 1 END FROM {seq})))", n.max(1));
                self.db.execute_raw(&sql).await?;
            }
            (None, _) => {
                let next = crate::ddl::next_version_sql(self.schema.as_deref());
                self.db.execute(&Sql { text: format!("UPDATE {qualified} SET \"__version\" = {next}"), params: Vec::new() }).await?;
            }
        }
        Ok(())
    }
}

/// Columns a restored table needs beyond what creating it made (`id` and the system columns).
pub fn added_columns(record: &TableRecord, columns: &[Column]) -> Vec<Column> {
    columns.iter().filter(|c| !(c.name == "id" || (record.id_kind == IdKind::String && c.name.starts_with("__")))).cloned().collect()
}

/// The logical column type's name in an archive.
pub fn type_name(ty: ColType) -> &'static str {
    match ty {
        ColType::String => "string",
        ColType::Number => "number",
        ColType::Boolean => "boolean",
        ColType::Date => "date",
        ColType::Binary => "binary",
        ColType::Integer => "integer",
    }
}

/// The logical column type of an archive's name.
pub fn type_of_name(name: &str) -> Option<ColType> {
    Some(match name {
        "string" => ColType::String,
        "number" => ColType::Number,
        "boolean" => ColType::Boolean,
        "date" => ColType::Date,
        "binary" => ColType::Binary,
        "integer" => ColType::Integer,
        _ => return None,
    })
}
