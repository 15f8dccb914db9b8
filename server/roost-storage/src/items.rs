//! Item reads and writes on a tenant table: insert, update, undelete, delete, query (§2.2 to §2.8).
//!
//! Values arrive already converted by the HTTP layer (dates parsed, ids checked); this module adds
//! dynamic-schema columns, coerces values to their column types, generates ids and system properties,
//! and tells conflicts from missing rows.

use crate::{Result, StorageError, Table, Tenant};
use roost_api::IdKind;
use roost_odata::sql::{Builder, ColType, Column, RenderError, Select, Sql, TableRef, Value};
use roost_odata::{BinaryOp, Expr, OrderBy};
use std::sync::Arc;

/// An item: member names as sent (matched case-insensitively to columns) and their values.
pub type Item = Vec<(String, Value)>;

/// A row as read: stored column names and values.
pub type Row = Vec<(String, Value)>;

/// What a write stored besides the client's members.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The item's id (`Text` or `Int`).
    pub id: Value,
    /// `__createdAt` (string-id tables, insert only).
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `__updatedAt` (string-id tables).
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `__version` (string-id tables).
    pub version: Option<Vec<u8>>,
}

/// Why a conditional write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// A storage error.
    Storage(StorageError),
    /// The version did not match: the current row with every system property (§2.6).
    Conflict(Row),
}

impl From<StorageError> for WriteError {
    fn from(e: StorageError) -> Self {
        WriteError::Storage(e)
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Storage(e.into())
    }
}

/// System properties a client asked for (§2.7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemProps {
    /// `__createdAt`
    pub created_at: bool,
    /// `__updatedAt`
    pub updated_at: bool,
    /// `__version`
    pub version: bool,
    /// `__deleted`
    pub deleted: bool,
}

impl SystemProps {
    /// Every property.
    pub const ALL: Self = Self { created_at: true, updated_at: true, version: true, deleted: true };

    /// True if `column` (stored name) is one of the requested properties.
    pub fn wants(&self, column: &str) -> bool {
        match column {
            "__createdAt" => self.created_at,
            "__updatedAt" => self.updated_at,
            "__version" => self.version,
            "__deleted" => self.deleted,
            _ => false,
        }
    }
}

/// A table query (§2.3, §3.6).
#[derive(Debug, Default)]
pub struct Query<'a> {
    /// `$filter`.
    pub filter: Option<&'a Expr>,
    /// `$orderby`.
    pub orderby: &'a [OrderBy],
    /// `$select` (column names as sent); `None` for all columns.
    pub select: Option<&'a [String]>,
    /// Requested system properties.
    pub system: SystemProps,
    /// `__includedeleted=true`.
    pub include_deleted: bool,
    /// `$top`.
    pub top: Option<u64>,
    /// `$skip`.
    pub skip: u64,
    /// Restrict to one id (reads by id).
    pub id: Option<Value>,
    /// Also count the matching rows, ignoring paging.
    pub count: bool,
}

fn is_system(table: &Table, name: &str) -> bool {
    table.record.id_kind == IdKind::String && name.starts_with("__")
}

/// The new-column type for a value (§2.8).
fn type_of(v: &Value) -> Option<ColType> {
    Some(match v {
        Value::Text(_) => ColType::String,
        Value::Number(_) | Value::Int(_) => ColType::Number,
        Value::Bool(_) => ColType::Boolean,
        Value::Date(_) => ColType::Date,
        Value::Bytes(_) => ColType::Binary,
        Value::Null => return None,
    })
}

/// Formats a number as JavaScript's `String(n)` does for the common cases.
pub fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

/// Converts a value to a column's type, as SQL Server's implicit conversions would (§2.8).
pub(crate) fn coerce(v: Value, ty: ColType) -> Result<Value> {
    use base64::Engine as _;
    let b64 = &base64::engine::general_purpose::STANDARD;
    Ok(match (v, ty) {
        (Value::Null, _) => Value::Null,
        (Value::Text(s), ColType::String) => Value::Text(s),
        (Value::Number(n), ColType::String) => Value::Text(js_number(n)),
        (Value::Int(n), ColType::String) => Value::Text(n.to_string()),
        (Value::Bool(b), ColType::String) => Value::Text(b.to_string()),
        (Value::Date(d), ColType::String) => Value::Text(roost_odata::format_datetime(&d)),
        (Value::Bytes(b), ColType::String) => Value::Text(b64.encode(b)),
        (Value::Number(n), ColType::Number) => Value::Number(n),
        (Value::Int(n), ColType::Number) => Value::Number(n as f64),
        (Value::Text(s), ColType::Number) => Value::Number(s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).ok_or(StorageError::Conversion)?),
        (Value::Bool(b), ColType::Number) => Value::Number(if b { 1.0 } else { 0.0 }),
        (Value::Bool(b), ColType::Boolean) => Value::Bool(b),
        (Value::Number(n), ColType::Boolean) => Value::Bool(n != 0.0),
        (Value::Int(n), ColType::Boolean) => Value::Bool(n != 0),
        (Value::Text(s), ColType::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(StorageError::Conversion),
        },
        (Value::Date(d), ColType::Date) => Value::Date(d),
        (Value::Text(s), ColType::Date) => Value::Date(roost_odata::parse_loose_datetime(&s).ok_or(StorageError::Conversion)?),
        (Value::Bytes(b), ColType::Binary) => Value::Bytes(b),
        (Value::Text(s), ColType::Binary) => Value::Bytes(b64.decode(s).map_err(|_| StorageError::Conversion)?),
        (Value::Int(n), ColType::Integer) => Value::Int(n),
        (Value::Number(n), ColType::Integer) if n.fract() == 0.0 && n.abs() < 9.2e18 => Value::Int(n as i64),
        _ => return Err(StorageError::Conversion),
    })
}

/// The `__version` a write's `RETURNING` gave.
fn returned_version(rows: Vec<Vec<Value>>) -> Result<Option<Vec<u8>>> {
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(Value::Bytes(v)) => Ok(Some(v)),
        other => Err(StorageError::Internal(format!("a write returned {other:?} as its version"))),
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    roost_odata::truncate_ms(chrono::Utc::now())
}

impl Tenant {
    fn table_ref<'a>(&'a self, table: &'a Table) -> TableRef<'a> {
        TableRef { schema: self.schema.as_deref(), name: &table.record.name }
    }

    /// Resolves the item's members to columns, adding missing ones when dynamic schema allows (§2.8).
    async fn resolve_columns(&self, table: &Table, item: &Item) -> Result<Arc<Vec<Column>>> {
        let mut cols = self.columns(table, false).await?;
        let missing = |cols: &[Column]| -> Vec<usize> {
            item.iter().enumerate().filter(|(_, (n, _))| !cols.iter().any(|c| c.name.eq_ignore_ascii_case(n))).map(|(i, _)| i).collect()
        };
        if missing(&cols).is_empty() {
            return Ok(cols);
        }
        // Another process may have added them: look again before deciding.
        cols = self.columns(table, true).await?;
        let todo = missing(&cols);
        if todo.is_empty() {
            return Ok(cols);
        }
        if !self.record.settings.dynamic_schema {
            return Err(StorageError::BadInput("Could not save item because it contains a column that is not in the table schema.".into()));
        }
        let mut add: Vec<Column> = Vec::new();
        for i in todo {
            let (name, value) = &item[i];
            if is_system(table, name) {
                return Err(StorageError::BadInput(format!(
                    "The column '{name}' can not be dynamically added. Columns that begin with a '__' are considered system columns."
                )));
            }
            let Some(ty) = type_of(value) else {
                return Err(StorageError::BadInput(format!("Unable to insert a null value for new property '{name}'")));
            };
            if !add.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
                add.push(Column { name: name.clone(), ty });
            }
        }
        if cols.len() + add.len() > crate::ddl::MAX_COLUMNS {
            return Err(StorageError::BadInput(format!(
                "Could not save item because it would give the table {} columns; a table may have at most {}.",
                cols.len() + add.len(),
                crate::ddl::MAX_COLUMNS
            )));
        }
        // Concurrent requests may add some of the same columns at the same time: retry with whatever
        // is still missing until every member has a column.
        let mut attempt = 0;
        loop {
            match crate::ddl::add_columns(&self.db, self.schema.as_deref(), &table.record.name, &add).await {
                Ok(()) => break,
                Err(e) => {
                    let now = self.columns(table, true).await?;
                    add.retain(|c| !now.iter().any(|n| n.name.eq_ignore_ascii_case(&c.name)));
                    attempt += 1;
                    if add.is_empty() {
                        return Ok(now);
                    }
                    if attempt >= 5 {
                        return Err(e);
                    }
                }
            }
        }
        tracing::info!(tenant.name = %self.record.name, table.name = %table.record.name, columns = add.len(), "Added columns dynamically");
        self.columns(table, true).await
    }

    /// Maps members to (stored column, coerced value).
    fn bind_members(cols: &[Column], item: Item) -> Result<Vec<(String, Value)>> {
        item.into_iter()
            .map(|(name, v)| {
                let c = cols.iter().find(|c| c.name.eq_ignore_ascii_case(&name)).ok_or_else(|| StorageError::Internal(format!("column {name} vanished")))?;
                Ok((c.name.clone(), coerce(v, c.ty)?))
            })
            .collect()
    }

    /// Inserts an item (§2.2 step 10). For string-id tables `id` may be in `item` as `Text`.
    pub async fn insert(&self, table: &Table, mut item: Item) -> Result<Written> {
        let string_id = table.record.id_kind == IdKind::String;
        let mut id = None;
        if let Some(pos) = item.iter().position(|(n, _)| n == "id") {
            let (_, v) = item.remove(pos);
            match v {
                Value::Text(s) if string_id && !s.is_empty() => id = Some(s),
                _ => {}
            }
        }
        let cols = self.resolve_columns(table, &item).await?;
        let members = Self::bind_members(&cols, item)?;
        let d = self.dialect();
        let mut b = Builder::new(d);
        b.push("INSERT INTO ");
        self.table_ref(table).render(&mut b);
        let mut names: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut written = Written { id: Value::Null, created_at: None, updated_at: None, version: None };
        let mut values_for_batch: Vec<Value> = Vec::new();
        // The rowversion is taken when the statement runs (so versions follow the order of writes).
        let next_version = crate::ddl::next_version_sql(self.schema.as_deref());
        if string_id {
            let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_ascii_uppercase());
            if id.chars().count() > 255 {
                return Err(StorageError::IdTooLong);
            }
            let t = now();
            names.extend(["id", "__createdAt", "__updatedAt"]);
            values.extend([Value::Text(id.clone()), Value::Date(t), Value::Date(t)]);
            written = Written { id: Value::Text(id), created_at: Some(t), updated_at: Some(t), version: None };
        }
        for (n, v) in &members {
            names.push(n);
            values.push(v.clone());
        }
        if names.is_empty() {
            b.push(" DEFAULT VALUES");
        } else {
            b.push(" (");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.ident(n);
            }
            if string_id {
                b.push(", ").ident("__version");
            }
            b.push(") VALUES (");
            values_for_batch = values.clone();
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.param(v);
            }
            if string_id {
                b.push(", ").push(&next_version);
            }
            b.push(")");
        }
        if let (true, Some(inserter)) = (string_id, &self.inserter) {
            // PostgreSQL: concurrent inserts share one multi-row statement and one commit.
            let mut t = Builder::new(self.dialect());
            self.table_ref(table).render(&mut t);
            let row = crate::pg_batch::Row {
                table: t.finish().text,
                columns: names.iter().map(|n| n.to_string()).collect(),
                values: values_for_batch,
                version: next_version,
            };
            let version = inserter.insert(row).await.map_err(|e| if e.is_unique_violation() { StorageError::Duplicate } else { e })?;
            written.version = Some(version);
        } else if string_id {
            b.push(" RETURNING ").ident("__version");
            let rows =
                self.db.write_fetch(&b.finish(), &[ColType::Binary]).await.map_err(|e| if e.is_unique_violation() { StorageError::Duplicate } else { e })?;
            if rows.len() != 1 {
                return Err(StorageError::Internal(format!("insert affected {} rows", rows.len())));
            }
            written.version = returned_version(rows)?;
        } else {
            b.push(" RETURNING \"id\"");
            let rows = self.db.write_fetch(&b.finish(), &[ColType::Integer]).await?;
            written.id = rows.into_iter().next().and_then(|r| r.into_iter().next()).ok_or_else(|| StorageError::Internal("insert returned no id".into()))?;
        }
        Ok(written)
    }

    fn id_condition(b: &mut Builder, id: &Value) {
        b.push(" WHERE ").ident("id").push(" = ").param(id.clone());
    }

    /// Updates the members of `item` on the row `id` (§2.4). `undelete` sets `__deleted = false` and
    /// allows touching deleted rows (§2.5).
    pub async fn update(&self, table: &Table, id: &Value, item: Item, if_match: Option<&[u8]>, undelete: bool) -> Result<Written, WriteError> {
        let string_id = table.record.id_kind == IdKind::String;
        let item: Item = item.into_iter().filter(|(n, _)| n != "id").collect();
        let cols = self.resolve_columns(table, &item).await?;
        let members = Self::bind_members(&cols, item)?;
        let mut b = Builder::new(self.dialect());
        b.push("UPDATE ");
        self.table_ref(table).render(&mut b);
        b.push(" SET ");
        let mut first = true;
        let mut set = |b: &mut Builder, name: &str, v: Value| {
            if !first {
                b.push(", ");
            }
            first = false;
            b.ident(name).push(" = ").param(v);
        };
        for (n, v) in members {
            set(&mut b, &n, v);
        }
        let mut written = Written { id: id.clone(), created_at: None, updated_at: None, version: None };
        if string_id {
            let t = now();
            set(&mut b, "__updatedAt", Value::Date(t));
            if undelete {
                set(&mut b, "__deleted", Value::Bool(false));
            }
            b.push(", ").ident("__version").push(" = ").push(&crate::ddl::next_version_sql(self.schema.as_deref()));
            written.updated_at = Some(t);
        } else if first {
            b.ident("id").push(" = ").ident("id");
        }
        Self::id_condition(&mut b, id);
        if let Some(v) = if_match.filter(|_| string_id) {
            b.push(" AND ").ident("__version").push(" = ").param(Value::Bytes(v.to_vec()));
        }
        if table.record.soft_delete && !undelete {
            b.push(" AND ").ident("__deleted").push(" = ").param(Value::Bool(false));
        }
        let n = if string_id {
            b.push(" RETURNING ").ident("__version");
            let rows = self.db.write_fetch(&b.finish(), &[ColType::Binary]).await.map_err(conversion)?;
            let n = rows.len();
            if n > 0 {
                written.version = returned_version(rows)?;
            }
            n as u64
        } else {
            self.db.execute(&b.finish()).await.map_err(conversion)?
        };
        if n == 0 {
            return Err(self.explain_miss(table, id, if_match).await);
        }
        Ok(written)
    }

    /// Deletes (or soft-deletes) the row `id` (§2.5).
    pub async fn delete(&self, table: &Table, id: &Value, if_match: Option<&[u8]>) -> Result<(), WriteError> {
        let string_id = table.record.id_kind == IdKind::String;
        let mut b = Builder::new(self.dialect());
        if table.record.soft_delete {
            b.push("UPDATE ");
            self.table_ref(table).render(&mut b);
            b.push(" SET ").ident("__deleted").push(" = ").param(Value::Bool(true));
            b.push(", ").ident("__updatedAt").push(" = ").param(Value::Date(now()));
            b.push(", ").ident("__version").push(" = ").push(&crate::ddl::next_version_sql(self.schema.as_deref()));
            Self::id_condition(&mut b, id);
            b.push(" AND ").ident("__deleted").push(" = ").param(Value::Bool(false));
        } else {
            b.push("DELETE FROM ");
            self.table_ref(table).render(&mut b);
            Self::id_condition(&mut b, id);
        }
        if let Some(v) = if_match.filter(|_| string_id) {
            b.push(" AND ").ident("__version").push(" = ").param(Value::Bytes(v.to_vec()));
        }
        if self.db.execute(&b.finish()).await? == 0 {
            return Err(self.explain_miss(table, id, if_match).await);
        }
        Ok(())
    }

    /// After a write matched no row: 404 if the row is missing or deleted, 412 if the version differs.
    async fn explain_miss(&self, table: &Table, id: &Value, if_match: Option<&[u8]>) -> WriteError {
        let row = match self.read_full(table, id).await {
            Ok(Some(r)) => r,
            Ok(None) => return WriteError::Storage(StorageError::NotFound),
            Err(e) => return WriteError::Storage(e),
        };
        if let Some(expected) = if_match {
            let current = row.iter().find(|(n, _)| n == "__version").map(|(_, v)| v);
            if current != Some(&Value::Bytes(expected.to_vec())) {
                return WriteError::Conflict(row);
            }
        }
        WriteError::Storage(StorageError::NotFound)
    }

    /// Reads a row with every column and system property, deleted or not.
    pub async fn read_full(&self, table: &Table, id: &Value) -> Result<Option<Row>> {
        let q = Query { system: SystemProps::ALL, include_deleted: true, id: Some(id.clone()), top: Some(1), ..Default::default() };
        Ok(self.query(table, &q).await?.0.into_iter().next())
    }

    /// Runs a query; returns the rows and, if asked, the total count.
    pub async fn query(&self, table: &Table, q: &Query<'_>) -> Result<(Vec<Row>, Option<i64>)> {
        match self.query_once(table, q, false).await {
            // The column may have been added by another process since we cached the schema.
            Err(StorageError::UnknownColumn(_)) => self.query_once(table, q, true).await,
            r => r,
        }
    }

    async fn query_once(&self, table: &Table, q: &Query<'_>, reload: bool) -> Result<(Vec<Row>, Option<i64>)> {
        let cols = self.columns(table, reload).await?;
        let mut out: Vec<Column> = Vec::new();
        match q.select {
            Some(names) if !names.iter().any(|n| n == "*") => {
                for n in names {
                    let c = cols.column_named(n).ok_or_else(|| StorageError::UnknownColumn(n.clone()))?;
                    if !out.contains(c) {
                        out.push(c.clone());
                    }
                }
            }
            _ => out.extend(cols.iter().filter(|c| !is_system(table, &c.name)).cloned()),
        }
        for c in cols.iter().filter(|c| is_system(table, &c.name) && q.system.wants(&c.name)) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        let mut extra = Vec::new();
        if let Some(id) = &q.id {
            let lit = match id {
                Value::Int(i) => Expr::Number(*i as f64),
                Value::Text(s) => Expr::String(s.clone()),
                _ => return Err(StorageError::Internal("bad id".into())),
            };
            extra.push(Expr::Binary(BinaryOp::Eq, Box::new(Expr::Member("id".into())), Box::new(lit)));
        }
        if table.record.soft_delete && !q.include_deleted {
            extra.push(Expr::Binary(BinaryOp::Eq, Box::new(Expr::Member("__deleted".into())), Box::new(Expr::Bool(false))));
        }
        let select = Select {
            table: self.table_ref(table),
            columns: &out,
            filter: q.filter,
            extra: &extra,
            orderby: q.orderby,
            // A read by id matches at most one row: no order to compute.
            insertion_order: if q.id.is_some() { None } else { Some(table.insertion_order()) },
            top: q.top,
            skip: q.skip,
        };
        // The schema the renderer sees includes the hidden order column so it can be referenced by us,
        // but client expressions naming it are refused before rendering.
        if let Some(name) = q.filter.into_iter().chain(q.orderby.iter().map(|o| &o.expr)).find_map(hidden_reference) {
            return Err(StorageError::UnknownColumn(name));
        }
        let schema = WithSeq { cols: &cols, seq: (table.record.id_kind == IdKind::String).then_some(&*SEQ_COLUMN) };
        let map = |e: RenderError| match e {
            RenderError::UnknownColumn(n) => StorageError::UnknownColumn(n),
        };
        let sql: Sql = select.render(&schema, self.dialect()).map_err(map)?;
        let types: Vec<ColType> = out.iter().map(|c| c.ty).collect();
        self.note_usage(table, q);
        let _slot = self.statement_slot().await?;
        let rows = if q.id.is_some() && q.filter.is_none() { self.db.fetch_cached(&sql, &types).await } else { self.db.fetch(&sql, &types).await };
        let rows = rows.map_err(conversion)?;
        let rows = rows.into_iter().map(|r| out.iter().map(|c| c.name.clone()).zip(r).collect()).collect();
        let count = if q.count { Some(self.db.fetch_count(&select.render_count(&schema, self.dialect()).map_err(map)?).await?) } else { None };
        Ok((rows, count))
    }
}

/// Uses of a column in filters and orderings before it gets an index.
const AUTO_INDEX_AFTER: u32 = 3;

impl Tenant {
    /// Counts the columns a query filters or orders on and, once a column has been used a few times,
    /// indexes it in the background (tenants never have to ask for indexes).
    fn note_usage(&self, table: &Table, q: &Query<'_>) {
        let mut names: Vec<&str> = Vec::new();
        if let Some(f) = q.filter {
            compared_members(f, &mut names);
        }
        names.extend(q.orderby.iter().filter_map(|o| match &o.expr {
            Expr::Member(m) => Some(m.as_str()),
            _ => None,
        }));
        if names.is_empty() {
            return;
        }
        let Ok(cols) = table.columns.read().map(|c| c.clone()) else { return };
        let Some(cols) = cols else { return };
        let mut due: Vec<String> = Vec::new();
        {
            let mut usage = table.usage.lock().unwrap_or_else(|e| e.into_inner());
            for n in names {
                let Some(c) = cols.iter().find(|c| c.name.eq_ignore_ascii_case(n)) else { continue };
                if c.name == "id" || c.ty == ColType::Binary {
                    continue;
                }
                let count = usage.entry(c.name.clone()).or_insert(0);
                if *count < AUTO_INDEX_AFTER {
                    *count += 1;
                    if *count == AUTO_INDEX_AFTER {
                        due.push(c.name.clone());
                    }
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let (db, schema, name, order) = (self.db.clone(), self.schema.clone(), table.record.name.clone(), table.insertion_order());
        let (tenant, usage) = (self.record.name.clone(), table.usage.clone());
        tokio::spawn(async move {
            // One build at a time in this process: concurrent CREATE INDEX CONCURRENTLY statements wait
            // on each other's transactions, and PostgreSQL breaks the deadlock by failing one.
            let _one_at_a_time = INDEX_BUILDS.lock().await;
            for column in due {
                match crate::ddl::create_auto_index(&db, schema.as_deref(), &name, &column, order).await {
                    Ok(()) => tracing::info!(tenant.name = %tenant, table.name = %name, column.name = %column, "Indexed `{column}` of `{name}`"),
                    Err(e) => {
                        tracing::warn!(tenant.name = %tenant, table.name = %name, column.name = %column, error = %e, "Could not index `{column}`; later queries will try again");
                        usage.lock().unwrap_or_else(|e| e.into_inner()).insert(column, 0);
                    }
                }
            }
        });
    }
}

/// Serialises this process's automatic index builds.
static INDEX_BUILDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Columns compared in a filter (`col op value`), the ones an index can serve.
fn compared_members<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
    match e {
        Expr::Binary(op, a, b) if op.is_comparison() => {
            for side in [a, b] {
                if let Expr::Member(m) = side.as_ref() {
                    out.push(m);
                }
            }
        }
        Expr::Binary(_, a, b) => {
            compared_members(a, out);
            compared_members(b, out);
        }
        Expr::Unary(_, a) => compared_members(a, out),
        Expr::Call(_, args) => args.iter().for_each(|a| compared_members(a, out)),
        _ => {}
    }
}

/// The hidden order column as the renderer sees it.
static SEQ_COLUMN: std::sync::LazyLock<Column> = std::sync::LazyLock::new(|| Column { name: crate::ddl::SEQ.into(), ty: ColType::Integer });

/// A table's columns plus, on string-id tables, the hidden `__seq` (which only Roost's own SQL names).
struct WithSeq<'a> {
    cols: &'a [Column],
    seq: Option<&'a Column>,
}

impl roost_odata::sql::Schema for WithSeq<'_> {
    fn column(&self, name: &str) -> Option<&Column> {
        self.cols.iter().find(|c| c.name.eq_ignore_ascii_case(name)).or(self.seq.filter(|s| s.name.eq_ignore_ascii_case(name)))
    }
}

/// Finds a client reference to the hidden `__seq` column.
fn hidden_reference(e: &Expr) -> Option<String> {
    match e {
        Expr::Member(m) if m.eq_ignore_ascii_case(crate::ddl::SEQ) => Some(m.clone()),
        Expr::Unary(_, a) => hidden_reference(a),
        Expr::Binary(_, a, b) => hidden_reference(a).or_else(|| hidden_reference(b)),
        Expr::Call(_, args) => args.iter().find_map(hidden_reference),
        _ => None,
    }
}

trait ColumnsExt {
    fn column_named(&self, name: &str) -> Option<&Column>;
}

impl ColumnsExt for Vec<Column> {
    fn column_named(&self, name: &str) -> Option<&Column> {
        self.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// Turns a database's "this value does not fit that type" into [`StorageError::Conversion`].
fn conversion(e: StorageError) -> StorageError {
    match &e {
        StorageError::Sql(sqlx::Error::Database(d)) if is_conversion_error(d.message()) => StorageError::Conversion,
        StorageError::Database(m) if is_conversion_error(m) => StorageError::Conversion,
        _ => e,
    }
}

/// Database messages that mean "this value does not fit that type" (a client error, §2.8).
fn is_conversion_error(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("invalid input syntax") || m.contains("out of range") || m.contains("division by zero") || m.contains("datatype mismatch")
}
