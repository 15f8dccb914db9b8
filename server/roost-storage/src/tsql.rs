//! `mssql.query` (protocol §6.7, R10): the T-SQL subset scripts send, parsed with a real SQL parser
//! (`sqlparser`, SQL Server dialect) and rewritten for the tenant's own database.
//!
//! What is accepted: `SELECT` (with `TOP n`, joins, sub-selects, `ORDER BY`), `INSERT … VALUES`,
//! `UPDATE`, `DELETE`, `TRUNCATE TABLE`; `[bracket]` and plain identifiers matched case-insensitively
//! to the tenant's tables and columns; `?` parameters; the functions of [`FUNCTIONS`] with
//! `GETUTCDATE()`/`GETDATE()`, `LEN` and `ISNULL` translated. Anything else fails with a message
//! naming the construct. Every table reference must resolve to one of the tenant's tables (optionally
//! qualified by the service name or `dbo`), which keeps a script inside its own tenant: the catalog,
//! other schemas and database functions are unreachable.
//!
//! On string-id tables an `INSERT` fills `id`, `__createdAt`, `__updatedAt` and `__version` when not
//! given, and an `UPDATE` renews `__version` and `__updatedAt`, as the original's defaults and
//! triggers did.

use crate::items::Row;
use crate::{Result, StorageError, Table, Tenant};
use roost_api::IdKind;
use roost_odata::sql::{ColType, Column, Dialect, Sql, Value};
use sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, Expr, FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
    TableFactor, TableObject, Value as SqlValue, VisitMut, VisitorMut,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Functions scripts may call (lower case).
pub const FUNCTIONS: &[&str] = &["count", "sum", "avg", "min", "max", "lower", "upper", "coalesce", "abs", "round", "len", "isnull", "getutcdate", "getdate"];

/// One result set: column names and rows (for `SELECT`), or the number of rows changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Column types where known (columns of tables), for `queryRaw`'s meta.
    pub types: Vec<Option<ColType>>,
    /// Rows.
    pub rows: Vec<Vec<Value>>,
    /// Rows changed by a write.
    pub affected: u64,
}

fn unsupported(what: impl std::fmt::Display) -> StorageError {
    StorageError::BadInput(format!("{what} is not supported by mssql on Roost (R10: a T-SQL subset)."))
}

fn ident(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// Rewrites one statement in place.
struct Rewriter<'a> {
    tenant: &'a Tenant,
    dialect: Dialect,
    /// Tables referenced (lower-case name → table, columns).
    tables: HashMap<String, (Arc<Table>, Arc<Vec<Column>>)>,
    /// `?` placeholders seen so far (renumbered in text order).
    placeholders: usize,
    /// The batch's parameters (placeholder k binds `params[k - 1]`).
    params: &'a [Value],
    error: Option<StorageError>,
}

impl Rewriter<'_> {
    fn column(&self, name: &str) -> Option<(String, ColType)> {
        self.tables.values().find_map(|(_, cols)| cols.iter().find(|c| c.name.eq_ignore_ascii_case(name)).map(|c| (c.name.clone(), c.ty)))
    }

    fn fail(&mut self, e: StorageError) -> ControlFlow<()> {
        self.error.get_or_insert(e);
        ControlFlow::Break(())
    }

    fn placeholder(&mut self) -> String {
        self.placeholders += 1;
        match self.dialect {
            Dialect::Postgres => format!("${}", self.placeholders),
            Dialect::Sqlite => format!("?{}", self.placeholders),
        }
    }

    /// The physical name of a table reference, or an error for anything outside the tenant.
    fn resolve(&self, name: &ObjectName) -> Result<ObjectName> {
        let parts: Vec<&Ident> = name.0.iter().filter_map(|p| if let ObjectNamePart::Identifier(i) = p { Some(i) } else { None }).collect();
        if parts.len() != name.0.len() || parts.is_empty() || parts.len() > 2 {
            return Err(StorageError::BadInput(format!("Invalid object name '{name}'.")));
        }
        if parts.len() == 2 {
            let schema = parts[0].value.to_ascii_lowercase();
            if schema != self.tenant.record.name.to_ascii_lowercase().replace('-', "_")
                && schema != self.tenant.record.name.to_ascii_lowercase()
                && schema != "dbo"
            {
                return Err(StorageError::BadInput(format!("Invalid object name '{name}': scripts reach only their own service's tables.")));
            }
        }
        let table_name = &parts[parts.len() - 1].value;
        let (table, _) =
            self.tables.get(&table_name.to_ascii_lowercase()).ok_or_else(|| StorageError::BadInput(format!("Invalid object name '{table_name}'.")))?;
        let mut out = Vec::new();
        if let Some(schema) = &self.tenant.schema {
            out.push(ObjectNamePart::Identifier(ident(schema)));
        }
        out.push(ObjectNamePart::Identifier(ident(&table.record.name)));
        Ok(ObjectName(out))
    }

    fn literal_for(&self, ty: ColType, e: &mut Expr) {
        // T-SQL writes booleans as bits: `complete = 1`.
        if ty == ColType::Boolean && self.dialect == Dialect::Postgres {
            if let Expr::Value(v) = e {
                if let SqlValue::Number(n, _) = &v.value {
                    let b = n.as_str() != "0";
                    v.value = SqlValue::Boolean(b);
                }
            }
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if query.with.is_some() {
            return self.fail(unsupported("WITH"));
        }
        // TOP n becomes LIMIT n.
        if let SetExpr::Select(select) = query.body.as_mut() {
            if let Some(top) = select.top.take() {
                if top.percent || top.with_ties {
                    return self.fail(unsupported("TOP … PERCENT / WITH TIES"));
                }
                let n = match top.quantity {
                    Some(sqlparser::ast::TopQuantity::Constant(n)) => Expr::value(SqlValue::Number(n.to_string(), false)),
                    Some(sqlparser::ast::TopQuantity::Expr(e)) => e,
                    None => return self.fail(unsupported("TOP without a number")),
                };
                if query.limit_clause.is_some() {
                    return self.fail(unsupported("TOP with OFFSET"));
                }
                query.limit_clause = Some(sqlparser::ast::LimitClause::LimitOffset { limit: Some(n), offset: None, limit_by: Vec::new() });
            }
            // `SELECT *` names the visible columns: SQLite would add the hidden insertion-order column.
            let mut expanded = Vec::new();
            for item in select.projection.drain(..) {
                match item {
                    SelectItem::Wildcard(_) => {
                        for rel in &select.from {
                            if let TableFactor::Table { name, .. } = &rel.relation {
                                let key =
                                    name.0.last().and_then(|p| if let ObjectNamePart::Identifier(i) = p { Some(i.value.to_ascii_lowercase()) } else { None });
                                if let Some((_, cols)) = key.and_then(|k| self.tables.get(&k)) {
                                    for c in cols.iter() {
                                        expanded.push(SelectItem::UnnamedExpr(Expr::Identifier(ident(&c.name))));
                                    }
                                }
                            }
                        }
                    }
                    other => expanded.push(other),
                }
            }
            select.projection = expanded;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        match self.resolve(relation) {
            Ok(r) => {
                *relation = r;
                ControlFlow::Continue(())
            }
            Err(e) => self.fail(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(i) => {
                if let Some((name, _)) = self.column(&i.value) {
                    *i = ident(&name);
                } else if i.quote_style == Some('[') {
                    i.quote_style = Some('"');
                }
            }
            Expr::CompoundIdentifier(parts) => {
                let n = parts.len();
                if let Some((name, _)) = parts.last().and_then(|l| self.column(&l.value)) {
                    parts[n - 1] = ident(&name);
                }
                for p in parts.iter_mut().take(n - 1) {
                    if let Some((t, _)) = self.tables.get(&p.value.to_ascii_lowercase()) {
                        *p = ident(&t.record.name);
                    } else if p.quote_style == Some('[') {
                        p.quote_style = Some('"');
                    }
                }
            }
            Expr::Value(v) => {
                if let SqlValue::Placeholder(p) = &v.value {
                    // Markers of system values added above; numbered after the script's own.
                    if p.starts_with("?sys:") || p == "?v" || p == "?u" {
                        return ControlFlow::Continue(());
                    }
                    // One this rewriter numbered already (inside a cast it put in place).
                    let numbered = p.strip_prefix('$').or_else(|| p.strip_prefix('?')).and_then(|n| n.parse::<usize>().ok());
                    if numbered.is_some_and(|n| n >= 1 && n <= self.placeholders) {
                        return ControlFlow::Continue(());
                    }
                    if p != "?" {
                        return self.fail(unsupported(format!("The parameter '{p}'")));
                    }
                    let ph = self.placeholder();
                    let is_text = matches!(self.params.get(self.placeholders - 1), Some(Value::Text(_)));
                    if is_text && self.dialect == Dialect::Postgres {
                        // Strings compare in the tenant collation (R3), as string columns do.
                        match Parser::new(&sqlparser::dialect::PostgreSqlDialect {}).try_with_sql(&format!("{ph}::text")).and_then(|mut p| p.parse_expr()) {
                            Ok(e) => *expr = Expr::Nested(Box::new(Expr::Collate { expr: Box::new(e), collation: pg_collation() })),
                            Err(e) => return self.fail(StorageError::Internal(e.to_string())),
                        }
                        return ControlFlow::Continue(());
                    }
                    v.value = SqlValue::Placeholder(ph);
                }
            }
            Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } => {
                if let Expr::Identifier(i) = left.as_ref() {
                    if let Some((_, ty)) = self.column(&i.value) {
                        self.literal_for(ty, right);
                    }
                }
            }
            // LIKE compares folded strings, as `substringof` does (collation.rs): PostgreSQL's
            // nondeterministic collations refuse LIKE.
            Expr::Like { expr: left, pattern, .. } | Expr::ILike { expr: left, pattern, .. } => {
                for side in [left, pattern] {
                    let inner = std::mem::replace(side.as_mut(), Expr::value(SqlValue::Null));
                    match fold_call(self.dialect, inner) {
                        Ok(e) => **side = e,
                        Err(e) => return self.fail(e),
                    }
                }
            }
            Expr::Function(f) if is_fold(&f.name.to_string()) => {}
            Expr::Function(f) => {
                let name = f.name.to_string().trim_matches(|c| c == '[' || c == ']' || c == '"').to_ascii_lowercase();
                if !FUNCTIONS.contains(&name.as_str()) {
                    return self.fail(unsupported(format!("The function '{}'", f.name)));
                }
                let no_args = matches!(&f.args, FunctionArguments::None) || matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty());
                let replacement = match (name.as_str(), self.dialect) {
                    ("getutcdate" | "getdate", Dialect::Postgres) if no_args => Some("now()"),
                    ("getutcdate" | "getdate", Dialect::Sqlite) if no_args => Some("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
                    _ => None,
                };
                if let Some(text) = replacement {
                    match Parser::new(&sqlparser::dialect::GenericDialect {}).try_with_sql(text).and_then(|mut p| p.parse_expr()) {
                        Ok(e) => *expr = e,
                        Err(e) => return self.fail(StorageError::Internal(e.to_string())),
                    }
                } else if name == "len" {
                    f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("length"))]);
                } else if name == "isnull" {
                    f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("coalesce"))]);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Table names a statement references (every `ObjectName` in a relation position).
fn referenced(stmt: &mut Statement) -> Vec<String> {
    let mut names = Vec::new();
    let _ = sqlparser::ast::visit_relations_mut(stmt, |r| {
        if let Some(ObjectNamePart::Identifier(i)) = r.0.last() {
            names.push(i.value.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

fn is_fold(name: &str) -> bool {
    name == roost_odata::sql::SQLITE_FOLD || name == roost_odata::sql::PG_FOLD
}

/// `inner` folded for a substring search: `roost_fold(inner)` / `(roost.fold(inner) COLLATE "C")`.
fn fold_call(dialect: Dialect, inner: Expr) -> Result<Expr> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr};
    let name = match dialect {
        Dialect::Sqlite => roost_odata::sql::SQLITE_FOLD,
        Dialect::Postgres => roost_odata::sql::PG_FOLD,
    };
    let mut e = Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(&format!("{name}(NULL)"))
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| StorageError::Internal(e.to_string()))?;
    let Expr::Function(f) = &mut e else { return Err(StorageError::Internal("unexpected fold template".into())) };
    let FunctionArguments::List(l) = &mut f.args else { return Err(StorageError::Internal("fold template without arguments".into())) };
    l.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))];
    Ok(match dialect {
        Dialect::Sqlite => e,
        Dialect::Postgres => Expr::Nested(Box::new(Expr::Collate { expr: Box::new(e), collation: ObjectName::from(vec![Ident::with_quote('"', "C")]) })),
    })
}

/// `roost.ci_as`, the tenant string collation on PostgreSQL.
fn pg_collation() -> ObjectName {
    ObjectName::from(roost_odata::sql::PG_COLLATION.split('.').map(Ident::new).collect::<Vec<_>>())
}

/// Runs a T-SQL batch against the tenant: one result set per statement.
pub async fn run(tenant: &Tenant, text: &str, params: &[Value]) -> Result<Vec<ResultSet>> {
    let statements = Parser::parse_sql(&MsSqlDialect {}, text).map_err(|e| StorageError::BadInput(format!("Incorrect syntax: {e}")))?;
    let dialect = tenant.dialect();
    let mut used_params = 0usize;
    let mut out = Vec::new();
    for mut stmt in statements {
        // Tables first: their columns resolve identifiers.
        let mut tables = HashMap::new();
        for name in referenced(&mut stmt) {
            if let Some(t) = tenant.table(&name) {
                let cols = tenant.columns(&t, false).await?;
                tables.insert(name.to_ascii_lowercase(), (t, cols));
            }
        }
        let kind = match &stmt {
            Statement::Query(_) => "select",
            Statement::Insert(_) => "insert",
            Statement::Update(_) => "update",
            Statement::Delete(_) => "delete",
            Statement::Truncate(_) => "truncate",
            other => {
                let first = other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                return Err(unsupported(format!("The statement '{first}'")));
            }
        };
        let mut rw = Rewriter { tenant, dialect, tables, placeholders: used_params, params, error: None };
        let mut extra: Vec<Value> = Vec::new();
        if let Statement::Truncate(t) = &stmt {
            let [target] = &t.table_names[..] else { return Err(unsupported("TRUNCATE of several tables")) };
            let name = rw.resolve(&target.name)?;
            let sql = Sql { text: format!("DELETE FROM {name}"), params: Vec::new() };
            let _slot = tenant.statement_slot().await?;
            let affected = tenant.db.execute(&sql).await?;
            out.push(ResultSet { columns: Vec::new(), types: Vec::new(), rows: Vec::new(), affected });
            continue;
        }
        // Assignments and inserted values of boolean columns, and system columns of string-id tables.
        match &mut stmt {
            Statement::Update(u) => {
                let target = match &u.table.relation {
                    TableFactor::Table { name, .. } => {
                        name.0.last().and_then(|p| if let ObjectNamePart::Identifier(i) = p { Some(i.value.to_ascii_lowercase()) } else { None })
                    }
                    _ => None,
                };
                for a in u.assignments.iter_mut() {
                    if let AssignmentTarget::ColumnName(n) = &mut a.target {
                        let col = n.0.last().and_then(|p| if let ObjectNamePart::Identifier(i) = p { Some(i.value.clone()) } else { None }).unwrap_or_default();
                        match rw.column(&col) {
                            Some((stored, ty)) => {
                                *n = ObjectName(vec![ObjectNamePart::Identifier(ident(&stored))]);
                                rw.literal_for(ty, &mut a.value);
                            }
                            None => return Err(StorageError::BadInput(format!("Invalid column name '{col}'."))),
                        }
                    }
                }
                if let Some((t, _)) = target.and_then(|t| rw.tables.get(&t)) {
                    if t.record.id_kind == IdKind::String && !u.assignments.iter().any(|a| a.target.to_string().contains("__version")) {
                        u.assignments.push(Assignment {
                            target: AssignmentTarget::ColumnName(ObjectName(vec![ObjectNamePart::Identifier(ident("__version"))])),
                            value: Expr::value(SqlValue::Placeholder("?v".into())),
                        });
                        u.assignments.push(Assignment {
                            target: AssignmentTarget::ColumnName(ObjectName(vec![ObjectNamePart::Identifier(ident("__updatedAt"))])),
                            value: Expr::value(SqlValue::Placeholder("?u".into())),
                        });
                    }
                }
            }
            Statement::Insert(ins) => {
                let TableObject::TableName(name) = &ins.table else { return Err(unsupported("INSERT into a table function")) };
                let key = name
                    .0
                    .last()
                    .and_then(|p| if let ObjectNamePart::Identifier(i) = p { Some(i.value.to_ascii_lowercase()) } else { None })
                    .unwrap_or_default();
                let Some((table, _)) = rw.tables.get(&key).cloned() else { return Err(StorageError::BadInput(format!("Invalid object name '{name}'."))) };
                let Some(source) = ins.source.as_mut() else { return Err(unsupported("INSERT without VALUES")) };
                let SetExpr::Values(values) = source.body.as_mut() else { return Err(unsupported("INSERT … SELECT")) };
                let mut types = Vec::new();
                for c in ins.columns.iter_mut() {
                    match rw.column(&c.value) {
                        Some((stored, ty)) => {
                            *c = ident(&stored);
                            types.push(ty);
                        }
                        None => return Err(StorageError::BadInput(format!("Invalid column name '{}'.", c.value))),
                    }
                }
                for row in values.rows.iter_mut() {
                    for (e, ty) in row.iter_mut().zip(types.iter()) {
                        rw.literal_for(*ty, e);
                    }
                }
                if table.record.id_kind == IdKind::String {
                    let has = |n: &str| ins.columns.iter().any(|c| c.value == n);
                    let missing: Vec<&str> = ["id", "__createdAt", "__updatedAt", "__version"].into_iter().filter(|n| !has(n)).collect();
                    for n in &missing {
                        ins.columns.push(ident(n));
                    }
                    for row in values.rows.iter_mut() {
                        for n in &missing {
                            row.push(Expr::value(SqlValue::Placeholder(format!("?sys:{n}"))));
                        }
                    }
                }
            }
            _ => {}
        }
        let _ = stmt.visit(&mut rw);
        if let Some(e) = rw.error.take() {
            return Err(e);
        }
        // System placeholders get numbers after the script's own, in text order; versions come from
        // the tenant's rowversion counter when the statement runs.
        let now = chrono::Utc::now();
        let mut text_out = stmt.to_string();
        let next_version = crate::ddl::next_version_sql(tenant.schema.as_deref());
        for marker in ["?sys:__version", "?v"] {
            while let Some(pos) = text_out.find(marker).filter(|p| !text_out[p + marker.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')) {
                text_out.replace_range(pos..pos + marker.len(), &next_version);
            }
        }
        for (marker, value) in
            [("?sys:id", None), ("?sys:__createdAt", Some(Value::Date(now))), ("?sys:__updatedAt", Some(Value::Date(now))), ("?u", Some(Value::Date(now)))]
        {
            while let Some(pos) = text_out.find(marker).filter(|p| !text_out[p + marker.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')) {
                let v = value.clone().unwrap_or_else(|| Value::Text(uuid::Uuid::new_v4().to_string()));
                let ph = rw.placeholder();
                text_out.replace_range(pos..pos + marker.len(), &ph);
                extra.push(v);
            }
        }
        let script_params = rw.placeholders - used_params - extra.len();
        let mut bound: Vec<Value> = params.iter().skip(used_params).take(script_params).cloned().collect();
        if bound.len() < script_params {
            return Err(StorageError::BadInput(format!(
                "The statement has {} parameters but {} values were given.",
                used_params + script_params,
                params.len()
            )));
        }
        // Renumbering: the statement's own placeholders were numbered from `used_params + 1`; the
        // parameter list of this statement starts with them, then the system values.
        let first = used_params;
        let mut all: Vec<Value> = vec![Value::Null; first];
        all.append(&mut bound);
        all.append(&mut extra);
        let sql = Sql { text: text_out, params: all };
        let sql = renumber_from_one(sql, first, dialect);
        used_params += script_params;
        if kind == "select" {
            let _slot = tenant.statement_slot().await?;
            let (columns, rows) = tenant.db.fetch_dynamic(&sql).await?;
            let types = columns.iter().map(|c| rw.column(c).map(|(_, t)| t)).collect();
            out.push(ResultSet { columns, types, rows, affected: 0 });
        } else {
            let _slot = tenant.statement_slot().await?;
            let affected = tenant.db.execute(&sql).await?;
            out.push(ResultSet { columns: Vec::new(), types: Vec::new(), rows: Vec::new(), affected });
        }
    }
    Ok(out)
}

/// Placeholders of one statement were numbered after those of earlier statements of the batch;
/// each statement runs alone, so its numbers start again at 1.
fn renumber_from_one(sql: Sql, offset: usize, dialect: Dialect) -> Sql {
    if offset == 0 {
        return sql;
    }
    let sigil = if dialect == Dialect::Postgres { '$' } else { '?' };
    let mut text = String::with_capacity(sql.text.len());
    let mut chars = sql.text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == sigil && !quoted && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            let k: usize = n.parse().unwrap_or(0);
            text.push(sigil);
            text.push_str(&(k - offset).to_string());
        } else {
            text.push(c);
        }
    }
    Sql { text, params: sql.params.into_iter().skip(offset).collect() }
}

/// A row of a result set as (name, value) pairs.
pub fn named(set: &ResultSet, row: &[Value]) -> Row {
    set.columns.iter().cloned().zip(row.iter().cloned()).collect()
}
