//! One executor over both backends: binds [`Value`]s, runs [`Sql`], and decodes rows by logical column
//! type. Everything above this module is dialect-independent except the SQL text, which comes from
//! `roost-odata` or from `ddl.rs`.

use crate::{Result, StorageError};
use roost_odata::sql::{ColType, Dialect, Sql, Value};
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Arguments, Row};

/// A connection pool to one database: a tenant's SQLite file, or the shared PostgreSQL database.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
    /// A tenant's SQLite database: group-committing writer and pooled readers.
    SqliteEngine(std::sync::Arc<crate::sqlite_engine::SqliteEngine>),
}

pub(crate) fn sqlite_args(params: &[Value]) -> Result<SqliteArguments<'static>> {
    let mut a = SqliteArguments::default();
    for p in params {
        let r = match p {
            Value::Null => a.add(Option::<String>::None),
            Value::Bool(b) => a.add(i64::from(*b)),
            Value::Number(n) => a.add(*n),
            Value::Int(i) => a.add(*i),
            Value::Text(s) => a.add(s.clone()),
            Value::Date(d) => a.add(roost_odata::format_datetime(d)),
            Value::Bytes(b) => a.add(b.clone()),
        };
        r.map_err(|e| StorageError::Internal(format!("bind: {e}")))?;
    }
    Ok(a)
}

pub(crate) fn pg_args(params: &[Value]) -> Result<PgArguments> {
    let mut a = PgArguments::default();
    for p in params {
        let r = match p {
            Value::Null => a.add(Option::<String>::None),
            Value::Bool(b) => a.add(*b),
            Value::Number(n) => a.add(*n),
            Value::Int(i) => a.add(*i),
            Value::Text(s) => a.add(s.clone()),
            Value::Date(d) => a.add(*d),
            Value::Bytes(b) => a.add(b.clone()),
        };
        r.map_err(|e| StorageError::Internal(format!("bind: {e}")))?;
    }
    Ok(a)
}

fn decode_sqlite(row: &SqliteRow, i: usize, ty: ColType) -> Result<Value> {
    use sqlx::ValueRef;
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    // Unchecked reads: SQLite's storage class can differ from the declared type (REAL affinity may hold
    // an integer); sqlite3_column_* converts.
    Ok(match ty {
        ColType::String => Value::Text(row.try_get_unchecked::<String, _>(i)?),
        ColType::Number => Value::Number(row.try_get_unchecked::<f64, _>(i)?),
        ColType::Integer => Value::Int(row.try_get_unchecked::<i64, _>(i)?),
        ColType::Boolean => Value::Bool(row.try_get_unchecked::<f64, _>(i)? != 0.0),
        ColType::Binary => Value::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i)?),
        ColType::Date => {
            let s = row.try_get_unchecked::<String, _>(i)?;
            match roost_odata::parse_loose_datetime(&s) {
                Some(d) => Value::Date(d),
                None => Value::Text(s),
            }
        }
    })
}

pub(crate) fn decode_pg(row: &PgRow, i: usize, ty: ColType) -> Result<Value> {
    Ok(match ty {
        ColType::String => row.try_get::<Option<String>, _>(i)?.map_or(Value::Null, Value::Text),
        ColType::Number => row.try_get::<Option<f64>, _>(i)?.map_or(Value::Null, Value::Number),
        ColType::Integer => row.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Int),
        ColType::Boolean => row.try_get::<Option<bool>, _>(i)?.map_or(Value::Null, Value::Bool),
        ColType::Binary => row.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, Value::Bytes),
        ColType::Date => row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)?.map_or(Value::Null, Value::Date),
    })
}

impl Db {
    /// The dialect of this pool.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) | Db::SqliteEngine(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a statement and returns the number of affected rows.
    pub async fn execute(&self, sql: &Sql) -> Result<u64> {
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_with(&sql.text, sqlite_args(&sql.params)?).execute(p).await?.rows_affected(),
            Db::Postgres(p) => sqlx::query_with(&sql.text, pg_args(&sql.params)?).execute(p).await?.rows_affected(),
            Db::SqliteEngine(e) => e.execute(sql).await?,
        })
    }

    /// Runs a write that returns rows (`INSERT … RETURNING`).
    pub async fn write_fetch(&self, sql: &Sql, types: &[ColType]) -> Result<Vec<Vec<Value>>> {
        match self {
            Db::SqliteEngine(e) => e.write_fetch(sql, types).await,
            other => other.fetch(sql, types).await,
        }
    }

    /// Runs raw DDL without parameters.
    pub async fn execute_raw(&self, text: &str) -> Result<()> {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(text).execute(p).await?;
            }
            Db::Postgres(p) => {
                sqlx::raw_sql(text).execute(p).await?;
            }
            Db::SqliteEngine(e) => e.execute_raw(text).await?,
        }
        Ok(())
    }

    /// Runs a query and decodes each row by `types` (one per selected column).
    pub async fn fetch(&self, sql: &Sql, types: &[ColType]) -> Result<Vec<Vec<Value>>> {
        match self {
            Db::Sqlite(p) => {
                let rows = sqlx::query_with(&sql.text, sqlite_args(&sql.params)?).fetch_all(p).await?;
                rows.iter().map(|r| types.iter().enumerate().map(|(i, t)| decode_sqlite(r, i, *t)).collect()).collect()
            }
            Db::Postgres(p) => {
                let rows = sqlx::query_with(&sql.text, pg_args(&sql.params)?).fetch_all(p).await?;
                rows.iter().map(|r| types.iter().enumerate().map(|(i, t)| decode_pg(r, i, *t)).collect()).collect()
            }
            Db::SqliteEngine(e) => e.fetch(sql, types).await,
        }
    }

    /// Runs a read whose columns are not known in advance (`mssql`): column names and decoded rows.
    pub async fn fetch_dynamic(&self, sql: &Sql) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        use sqlx::{Column as _, Row as _, TypeInfo as _};
        match self {
            Db::SqliteEngine(e) => e.fetch_dynamic(sql).await,
            Db::Postgres(p) => {
                let rows = sqlx::query_with(&sql.text, pg_args(&sql.params)?).fetch_all(p).await?;
                let Some(first) = rows.first() else { return Ok((Vec::new(), Vec::new())) };
                let cols: Vec<(String, Option<ColType>)> = first
                    .columns()
                    .iter()
                    .map(|c| {
                        let ty = match c.type_info().name().to_ascii_uppercase().as_str() {
                            "TEXT" | "CITEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Some(ColType::String),
                            "FLOAT8" => Some(ColType::Number),
                            "INT8" => Some(ColType::Integer),
                            "BOOL" => Some(ColType::Boolean),
                            "TIMESTAMPTZ" | "TIMESTAMP" => Some(ColType::Date),
                            "BYTEA" => Some(ColType::Binary),
                            _ => None,
                        };
                        (c.name().to_string(), ty)
                    })
                    .collect();
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let mut row = Vec::with_capacity(cols.len());
                    for (i, (name, ty)) in cols.iter().enumerate() {
                        row.push(match ty {
                            Some(t) => decode_pg(r, i, *t)?,
                            None if matches!(r.columns()[i].type_info().name(), "INT4" | "INT2") => {
                                let n: Option<i32> = match r.columns()[i].type_info().name() {
                                    "INT2" => r.try_get::<Option<i16>, _>(i)?.map(i32::from),
                                    _ => r.try_get::<Option<i32>, _>(i)?,
                                };
                                n.map_or(Value::Null, |n| Value::Int(i64::from(n)))
                            }
                            None => {
                                return Err(StorageError::BadInput(format!(
                                    "The result column '{name}' has a type mssql on Roost cannot return ({}).",
                                    r.columns()[i].type_info().name()
                                )))
                            }
                        });
                    }
                    out.push(row);
                }
                Ok((cols.into_iter().map(|(n, _)| n).collect(), out))
            }
            Db::Sqlite(_) => Err(StorageError::Internal("the catalog pool runs no tenant SQL".into())),
        }
    }

    /// Runs a read that may be answered from the SQLite engine's result cache (reads by id).
    pub async fn fetch_cached(&self, sql: &Sql, types: &[ColType]) -> Result<Vec<Vec<Value>>> {
        match self {
            Db::SqliteEngine(e) => Ok(e.fetch_cached(sql, types).await?.as_ref().clone()),
            other => other.fetch(sql, types).await,
        }
    }

    /// Runs a query returning one integer (a count).
    pub async fn fetch_count(&self, sql: &Sql) -> Result<i64> {
        let rows = self.fetch(sql, &[ColType::Integer]).await?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(n)) => Ok(*n),
            _ => Ok(0),
        }
    }
}
