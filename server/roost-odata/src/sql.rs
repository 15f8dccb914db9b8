//! Renders parsed OData into SQL for SQLite or PostgreSQL (§3.4 to §3.6).
//!
//! Every constant becomes a bound parameter ([`Value`]); every column reference is resolved through a
//! [`Schema`] (case-insensitively, R3) and quoted with its stored casing. A reference to a column the
//! table does not have yields [`RenderError::UnknownColumn`], which the server turns into `[]` or a 400
//! depending on the tenant's dynamic-schema setting (§2.3).
//!
//! String comparisons and string ordering follow SQL Server's `SQL_Latin1_General_CP1_CI_AS` (R3):
//! case-insensitive, accent-sensitive, linguistic order. Text columns carry the collation
//! ([`SQLITE_COLLATION`] / [`PG_COLLATION`], defined in `roost-storage/src/collation.rs` and migration
//! 0012) and comparisons and orderings of computed strings add it. String functions compute on plain
//! text (`COLLATE "C"` on PostgreSQL, whose nondeterministic collations refuse substring searches);
//! substring searches compare folded strings ([`SQLITE_FOLD`] / [`PG_FOLD`]).

use crate::{BinaryOp, Expr, Func, OrderBy, UnaryOp};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// The SQLite collation of tenant string columns (registered on every tenant connection).
pub const SQLITE_COLLATION: &str = "ROOST_CI_AS";
/// The SQLite function folding a string for substring searches.
pub const SQLITE_FOLD: &str = "roost_fold";
/// The PostgreSQL collation of tenant string columns (ICU, `und-u-ks-level2`, nondeterministic).
pub const PG_COLLATION: &str = "roost.ci_as";
/// The PostgreSQL function folding a string for substring searches.
pub const PG_FOLD: &str = "roost.fold";

/// The SQL dialects Roost renders for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3 (embedded default).
    Sqlite,
    /// PostgreSQL 15+.
    Postgres,
}

/// The logical type of a column (§2.8), independent of the dialect's physical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `NVARCHAR(MAX)`: TEXT / text, with the tenant string collation.
    String,
    /// `FLOAT(53)`: REAL / double precision.
    Number,
    /// `BIT`: stored 0/1 / boolean.
    Boolean,
    /// `DATETIMEOFFSET(3)`: ISO-8601 text / timestamptz(3).
    Date,
    /// `timestamp`/`binary` (only `__version`): BLOB / bytea.
    Binary,
    /// The integer `id` of a legacy table: INTEGER / bigint.
    Integer,
}

/// A column as stored: its name in stored casing and its logical type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Name with its stored casing.
    pub name: String,
    /// Logical type.
    pub ty: ColType,
}

/// Resolves column names case-insensitively.
pub trait Schema {
    /// The column whose name equals `name` ignoring ASCII case, if any.
    fn column(&self, name: &str) -> Option<&Column>;
}

impl Schema for [Column] {
    fn column(&self, name: &str) -> Option<&Column> {
        self.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

impl Schema for Vec<Column> {
    fn column(&self, name: &str) -> Option<&Column> {
        self.as_slice().column(name)
    }
}

/// A value bound to or read from SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A double.
    Number(f64),
    /// A 64-bit integer (integer ids, counts).
    Int(i64),
    /// Text.
    Text(String),
    /// A UTC instant with millisecond precision.
    Date(DateTime<Utc>),
    /// Raw bytes (`__version`).
    Bytes(Vec<u8>),
}

/// SQL text plus its parameters, in placeholder order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    /// The statement.
    pub text: String,
    /// Parameters for `?` (SQLite) or `$n` (PostgreSQL) placeholders.
    pub params: Vec<Value>,
}

/// Why an expression could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The expression names a column the table does not have.
    #[error("Invalid column name specified in query.")]
    UnknownColumn(String),
}

/// Quotes an identifier that has already passed the identifier rule (it cannot contain `"`).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Builds SQL text and its parameters for one dialect.
#[derive(Debug)]
pub struct Builder {
    /// Target dialect.
    pub dialect: Dialect,
    sql: Sql,
}

impl Builder {
    /// An empty builder.
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect, sql: Sql::default() }
    }

    /// Appends raw SQL text (never input-derived text).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.text.push_str(s);
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        let q = quote(name);
        self.sql.text.push_str(&q);
        self
    }

    /// Appends a placeholder bound to `v` (NULL is written inline).
    pub fn param(&mut self, v: Value) -> &mut Self {
        if v == Value::Null {
            self.sql.text.push_str("NULL");
            return self;
        }
        match self.dialect {
            Dialect::Sqlite => self.sql.text.push('?'),
            Dialect::Postgres => {
                let cast = match &v {
                    Value::Text(_) => "text",
                    Value::Number(_) => "float8",
                    Value::Int(_) => "int8",
                    Value::Bool(_) => "boolean",
                    Value::Date(_) => "timestamptz",
                    Value::Bytes(_) => "bytea",
                    Value::Null => "text",
                };
                let n = self.sql.params.len() + 1;
                let _ = write!(self.sql.text, "${n}::{cast}");
            }
        }
        self.sql.params.push(v);
        self
    }

    /// The SQL for a boolean true constant in this dialect.
    fn true_lit(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "true",
        }
    }

    /// Finishes the statement.
    pub fn finish(self) -> Sql {
        self.sql
    }
}

/// The inferred type of an expression, for casts and case-insensitive comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Bool,
    Date,
    Bin,
    Null,
}

fn infer(e: &Expr, schema: &dyn Schema) -> Ty {
    match e {
        Expr::Null => Ty::Null,
        Expr::Bool(_) => Ty::Bool,
        Expr::Number(_) => Ty::Num,
        Expr::String(_) => Ty::Str,
        Expr::DateTime(_) => Ty::Date,
        Expr::Member(m) => match schema.column(m).map(|c| c.ty) {
            Some(ColType::String) | None => Ty::Str,
            Some(ColType::Number | ColType::Integer) => Ty::Num,
            Some(ColType::Boolean) => Ty::Bool,
            Some(ColType::Date) => Ty::Date,
            Some(ColType::Binary) => Ty::Bin,
        },
        Expr::Unary(UnaryOp::Not, _) => Ty::Bool,
        Expr::Unary(UnaryOp::Neg, _) => Ty::Num,
        Expr::Binary(op, _, _) if op.is_comparison() || matches!(op, BinaryOp::And | BinaryOp::Or) => Ty::Bool,
        Expr::Binary(..) => Ty::Num,
        Expr::Call(f, _) => match f {
            Func::SubstringOf | Func::StartsWith | Func::EndsWith => Ty::Bool,
            Func::ToLower | Func::ToUpper | Func::Trim | Func::Concat | Func::Replace | Func::Substring => Ty::Str,
            _ => Ty::Num,
        },
    }
}

/// True if the expression is already a SQL predicate (booleanisation of §3.5).
fn is_predicate(e: &Expr) -> bool {
    match e {
        Expr::Bool(_) => true,
        Expr::Unary(UnaryOp::Not, _) => true,
        Expr::Binary(op, _, _) => op.is_comparison() || matches!(op, BinaryOp::And | BinaryOp::Or),
        Expr::Call(f, _) => matches!(f, Func::SubstringOf | Func::StartsWith | Func::EndsWith),
        _ => false,
    }
}

struct Renderer<'a> {
    schema: &'a dyn Schema,
}

impl Renderer<'_> {
    /// Renders `e` as a predicate, comparing non-predicates with true.
    fn predicate(&self, b: &mut Builder, e: &Expr) -> Result<(), RenderError> {
        if let Expr::Bool(v) = e {
            b.push(if *v { "(1 = 1)" } else { "(1 = 0)" });
            Ok(())
        } else if is_predicate(e) {
            self.expr(b, e)
        } else {
            b.push("(");
            self.expr(b, e)?;
            let t = b.true_lit();
            b.push(" = ").push(t).push(")");
            Ok(())
        }
    }

    fn member(&self, name: &str) -> Result<&Column, RenderError> {
        self.schema.column(name).ok_or_else(|| RenderError::UnknownColumn(name.to_string()))
    }

    /// Renders `e` coerced to text (for string functions).
    fn text_arg(&self, b: &mut Builder, e: &Expr) -> Result<(), RenderError> {
        match (b.dialect, e) {
            (_, Expr::String(_)) => self.expr(b, e),
            // SQLite prints an integral REAL as `1994.0`; JavaScript and SQL Server print `1994`.
            (Dialect::Sqlite, _) if infer(e, self.schema) == Ty::Num => {
                b.push("(CASE WHEN ");
                self.expr(b, e)?;
                b.push(" = CAST(");
                self.expr(b, e)?;
                b.push(" AS INTEGER) THEN CAST(CAST(");
                self.expr(b, e)?;
                b.push(" AS INTEGER) AS TEXT) ELSE CAST(");
                self.expr(b, e)?;
                b.push(" AS TEXT) END)");
                Ok(())
            }
            (Dialect::Sqlite, _) => {
                b.push("CAST(");
                self.expr(b, e)?;
                b.push(" AS TEXT)");
                Ok(())
            }
            // Functions compute on plain text: nondeterministic collations refuse substring searches.
            (Dialect::Postgres, _) => {
                b.push("(CAST(");
                self.expr(b, e)?;
                b.push(" AS text) COLLATE \"C\")");
                Ok(())
            }
        }
    }

    fn num_arg(&self, b: &mut Builder, e: &Expr, int: bool) -> Result<(), RenderError> {
        match b.dialect {
            Dialect::Sqlite => self.expr(b, e),
            Dialect::Postgres => {
                b.push("CAST(");
                self.expr(b, e)?;
                b.push(if int { " AS integer)" } else { " AS float8)" });
                Ok(())
            }
        }
    }

    /// Renders an operand of a comparison, converting a string constant compared with a binary or
    /// date column into that type (§2.7, §3.5).
    fn operand(&self, b: &mut Builder, e: &Expr, other: Ty) -> Result<(), RenderError> {
        match (e, other) {
            (Expr::String(s), Ty::Bin) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_else(|_| b"\xff-never".to_vec());
                b.param(Value::Bytes(bytes));
                Ok(())
            }
            (Expr::String(s), Ty::Date) => match crate::parse_loose_datetime(s) {
                Some(d) => self.expr(b, &Expr::DateTime(d)),
                None => self.expr(b, e),
            },
            _ => self.expr(b, e),
        }
    }

    fn comparison(&self, b: &mut Builder, op: BinaryOp, l: &Expr, r: &Expr) -> Result<(), RenderError> {
        // `boolexpr eq true` → boolexpr, `boolexpr eq false` → NOT boolexpr.
        if matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
            let pair = match (l, r) {
                (p, Expr::Bool(v)) if is_predicate(p) && !matches!(p, Expr::Bool(_)) => Some((p, *v)),
                (Expr::Bool(v), p) if is_predicate(p) && !matches!(p, Expr::Bool(_)) => Some((p, *v)),
                _ => None,
            };
            if let Some((p, v)) = pair {
                let positive = v == (op == BinaryOp::Eq);
                if !positive {
                    b.push("(NOT ");
                }
                self.expr(b, p)?;
                if !positive {
                    b.push(")");
                }
                return Ok(());
            }
            // `x eq null` → IS NULL (either side).
            let null_side = match (l, r) {
                (x, Expr::Null) | (Expr::Null, x) => Some(x),
                _ => None,
            };
            if let Some(x) = null_side {
                b.push("(");
                if matches!(x, Expr::Null) {
                    b.push("NULL");
                } else {
                    self.expr(b, x)?;
                }
                b.push(if op == BinaryOp::Eq { " IS NULL)" } else { " IS NOT NULL)" });
                return Ok(());
            }
        }
        let (lt, rt) = (infer(l, self.schema), infer(r, self.schema));
        let sql_op = match op {
            BinaryOp::Eq => " = ",
            BinaryOp::Ne => " <> ",
            BinaryOp::Lt => " < ",
            BinaryOp::Le => " <= ",
            BinaryOp::Gt => " > ",
            BinaryOp::Ge => " >= ",
            _ => unreachable_op(),
        };
        let textual = (lt == Ty::Str && !matches!(rt, Ty::Bin | Ty::Date)) || (rt == Ty::Str && !matches!(lt, Ty::Bin | Ty::Date));
        b.push("(");
        match (b.dialect, textual) {
            (Dialect::Postgres, true) => {
                self.collated(b, l)?;
                b.push(sql_op);
                self.collated(b, r)?;
            }
            (Dialect::Sqlite, true) => {
                self.operand(b, l, rt)?;
                b.push(sql_op);
                self.operand(b, r, lt)?;
                b.push(" COLLATE ").push(SQLITE_COLLATION);
            }
            _ => {
                self.operand(b, l, rt)?;
                b.push(sql_op);
                self.operand(b, r, lt)?;
            }
        }
        b.push(")");
        Ok(())
    }

    /// PostgreSQL: renders a string operand in the tenant collation (a string column as is, so its
    /// index is usable).
    fn collated(&self, b: &mut Builder, e: &Expr) -> Result<(), RenderError> {
        if let Expr::Member(m) = e {
            if self.member(m)?.ty == ColType::String {
                return self.expr(b, e);
            }
        }
        b.push("(CAST(");
        self.expr(b, e)?;
        b.push(" AS text) COLLATE ").push(PG_COLLATION).push(")");
        Ok(())
    }

    /// Renders `e` as text folded for substring searches (see `roost-storage/src/collation.rs`).
    fn folded(&self, b: &mut Builder, e: &Expr) -> Result<(), RenderError> {
        match b.dialect {
            Dialect::Sqlite => {
                b.push(SQLITE_FOLD).push("(");
                self.text_arg(b, e)?;
                b.push(")");
            }
            // A constant is folded once per statement (a sub-select), not once per row.
            Dialect::Postgres if matches!(e, Expr::String(_)) => {
                b.push("(SELECT ").push(PG_FOLD).push("(");
                self.text_arg(b, e)?;
                b.push(") COLLATE \"C\")");
            }
            Dialect::Postgres => {
                b.push("(").push(PG_FOLD).push("(");
                self.text_arg(b, e)?;
                b.push(") COLLATE \"C\")");
            }
        }
        Ok(())
    }

    fn expr(&self, b: &mut Builder, e: &Expr) -> Result<(), RenderError> {
        match e {
            Expr::Null => {
                b.push("NULL");
            }
            Expr::Bool(v) => {
                b.push(match (b.dialect, v) {
                    (Dialect::Sqlite, true) => "1",
                    (Dialect::Sqlite, false) => "0",
                    (Dialect::Postgres, true) => "true",
                    (Dialect::Postgres, false) => "false",
                });
            }
            Expr::Number(n) => {
                b.param(Value::Number(*n));
            }
            Expr::String(s) => {
                b.param(Value::Text(s.clone()));
            }
            Expr::DateTime(d) => {
                let v = match b.dialect {
                    Dialect::Sqlite => Value::Text(crate::format_datetime(d)),
                    Dialect::Postgres => Value::Date(*d),
                };
                b.param(v);
            }
            Expr::Member(m) => {
                let name = self.member(m)?.name.clone();
                b.ident(&name);
            }
            Expr::Unary(UnaryOp::Not, x) => {
                b.push("(NOT ");
                self.predicate(b, x)?;
                b.push(")");
            }
            Expr::Unary(UnaryOp::Neg, x) => {
                b.push("(- ");
                self.num_arg(b, x, false)?;
                b.push(")");
            }
            Expr::Binary(op @ (BinaryOp::And | BinaryOp::Or), l, r) => {
                b.push("(");
                self.predicate(b, l)?;
                b.push(if *op == BinaryOp::And { " AND " } else { " OR " });
                self.predicate(b, r)?;
                b.push(")");
            }
            Expr::Binary(op, l, r) if op.is_comparison() => self.comparison(b, *op, l, r)?,
            Expr::Binary(op, l, r) => self.arithmetic(b, *op, l, r)?,
            Expr::Call(f, args) => self.call(b, *f, args)?,
        }
        Ok(())
    }

    fn arithmetic(&self, b: &mut Builder, op: BinaryOp, l: &Expr, r: &Expr) -> Result<(), RenderError> {
        match (b.dialect, op) {
            (Dialect::Sqlite, BinaryOp::Mod) => {
                b.push("(CAST(round(");
                self.expr(b, l)?;
                b.push(") AS INTEGER) % CAST(");
                self.expr(b, r)?;
                b.push(" AS INTEGER))");
            }
            (Dialect::Postgres, BinaryOp::Mod) => {
                b.push("CAST(mod(round(CAST(");
                self.expr(b, l)?;
                b.push(" AS numeric)), trunc(CAST(");
                self.expr(b, r)?;
                b.push(" AS numeric))) AS float8)");
            }
            (Dialect::Sqlite, BinaryOp::Div) => {
                b.push("(CAST(");
                self.expr(b, l)?;
                b.push(" AS REAL) / ");
                self.expr(b, r)?;
                b.push(")");
            }
            _ => {
                let sql_op = match op {
                    BinaryOp::Add => " + ",
                    BinaryOp::Sub => " - ",
                    BinaryOp::Mul => " * ",
                    BinaryOp::Div => " / ",
                    _ => unreachable_op(),
                };
                b.push("(");
                self.num_arg(b, l, false)?;
                b.push(sql_op);
                self.num_arg(b, r, false)?;
                b.push(")");
            }
        }
        Ok(())
    }

    fn call(&self, b: &mut Builder, f: Func, a: &[Expr]) -> Result<(), RenderError> {
        let pg = b.dialect == Dialect::Postgres;
        match f {
            // Both sides folded (case-insensitive, accent-sensitive); `%` and `_` in `s` stay wildcards (§3.4).
            Func::SubstringOf | Func::StartsWith | Func::EndsWith => {
                // substringof(s, x) has its arguments reversed (OData v2).
                let (x, s) = if f == Func::SubstringOf { (&a[1], &a[0]) } else { (&a[0], &a[1]) };
                b.push("(");
                self.folded(b, x)?;
                b.push(" LIKE (");
                if f != Func::StartsWith {
                    b.push("'%' || ");
                }
                self.folded(b, s)?;
                if f != Func::EndsWith {
                    b.push(" || '%'");
                }
                b.push("))");
            }
            Func::IndexOf => {
                b.push(if pg { "(strpos(" } else { "(instr(" });
                self.folded(b, &a[0])?;
                b.push(", ");
                self.folded(b, &a[1])?;
                b.push(") - 1)");
            }
            Func::Length => {
                b.push(if pg { "char_length(" } else { "length(" });
                self.text_arg(b, &a[0])?;
                b.push(")");
            }
            Func::ToLower | Func::ToUpper | Func::Trim => {
                b.push(match f {
                    Func::ToLower => "lower(",
                    Func::ToUpper => "upper(",
                    _ => "trim(",
                });
                self.text_arg(b, &a[0])?;
                b.push(")");
            }
            Func::Concat => {
                b.push("(");
                self.text_arg(b, &a[0])?;
                b.push(" || ");
                self.text_arg(b, &a[1])?;
                b.push(")");
            }
            Func::Replace => {
                b.push("replace(");
                self.text_arg(b, &a[0])?;
                b.push(", ");
                self.text_arg(b, &a[1])?;
                b.push(", ");
                self.text_arg(b, &a[2])?;
                b.push(")");
            }
            Func::Substring => {
                b.push("substr(");
                self.text_arg(b, &a[0])?;
                b.push(", ");
                self.num_arg(b, &a[1], true)?;
                b.push(" + 1");
                if let Some(len) = a.get(2) {
                    b.push(", ");
                    self.num_arg(b, len, true)?;
                }
                b.push(")");
            }
            Func::Day | Func::Month | Func::Year | Func::Hour | Func::Minute | Func::Second => {
                let (part, fmt) = match f {
                    Func::Day => ("day", "%d"),
                    Func::Month => ("month", "%m"),
                    Func::Year => ("year", "%Y"),
                    Func::Hour => ("hour", "%H"),
                    Func::Minute => ("minute", "%M"),
                    _ => ("second", "%S"),
                };
                if pg {
                    b.push("floor(date_part('").push(part).push("', CAST(");
                    self.expr(b, &a[0])?;
                    b.push(" AS timestamptz) AT TIME ZONE 'UTC'))");
                } else {
                    b.push("CAST(strftime('").push(fmt).push("', ");
                    self.expr(b, &a[0])?;
                    b.push(") AS REAL)");
                }
            }
            Func::Floor | Func::Ceiling => {
                if pg {
                    b.push(if f == Func::Floor { "floor(" } else { "ceiling(" });
                    self.num_arg(b, &a[0], false)?;
                    b.push(")");
                } else {
                    // Portable: SQLite builds without the math extension lack floor/ceil.
                    let (cmp, step) = if f == Func::Floor { (" < ", " - 1") } else { (" > ", " + 1") };
                    b.push("(CASE WHEN ");
                    self.expr(b, &a[0])?;
                    b.push(cmp).push("CAST(");
                    self.expr(b, &a[0])?;
                    b.push(" AS INTEGER) THEN CAST(");
                    self.expr(b, &a[0])?;
                    b.push(" AS INTEGER)").push(step).push(" ELSE CAST(");
                    self.expr(b, &a[0])?;
                    b.push(" AS INTEGER) END)");
                }
            }
            Func::Round => {
                if pg {
                    b.push("CAST(round(CAST(");
                    self.expr(b, &a[0])?;
                    b.push(" AS numeric)) AS float8)");
                } else {
                    b.push("round(");
                    self.expr(b, &a[0])?;
                    b.push(")");
                }
            }
        }
        Ok(())
    }

    /// Renders an ordering term; computed strings order in the tenant collation.
    fn order_term(&self, b: &mut Builder, o: &OrderBy) -> Result<(), RenderError> {
        let computed_string = !matches!(o.expr, Expr::Member(_)) && infer(&o.expr, self.schema) == Ty::Str;
        match (b.dialect, computed_string) {
            (Dialect::Postgres, true) => {
                b.push("(CAST(");
                self.expr(b, &o.expr)?;
                b.push(" AS text) COLLATE ").push(PG_COLLATION).push(")");
            }
            (Dialect::Sqlite, true) => {
                self.expr(b, &o.expr)?;
                b.push(" COLLATE ").push(SQLITE_COLLATION);
            }
            _ if is_predicate(&o.expr) => {
                b.push("(CASE WHEN ");
                self.expr(b, &o.expr)?;
                b.push(" THEN 1 ELSE 0 END)");
            }
            _ => self.expr(b, &o.expr)?,
        }
        // NULLs first ascending, as SQL Server orders them.
        b.push(match (b.dialect, o.descending) {
            (Dialect::Sqlite, false) => " ASC",
            (Dialect::Sqlite, true) => " DESC",
            (Dialect::Postgres, false) => " ASC NULLS FIRST",
            (Dialect::Postgres, true) => " DESC NULLS LAST",
        });
        Ok(())
    }
}

#[cold]
fn unreachable_op() -> &'static str {
    // Only reachable through a bug in the caller's dispatch; render something that fails safely.
    " ? "
}

/// A table, schema-qualified on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct TableRef<'a> {
    /// PostgreSQL schema of the tenant; `None` on SQLite (one database per tenant).
    pub schema: Option<&'a str>,
    /// Stored table name.
    pub name: &'a str,
}

impl TableRef<'_> {
    /// Appends the (qualified, quoted) table name.
    pub fn render(&self, b: &mut Builder) {
        if let Some(s) = self.schema {
            b.ident(s).push(".");
        }
        b.ident(self.name);
    }
}

/// A SELECT over a tenant table (§3.6).
#[derive(Debug)]
pub struct Select<'a> {
    /// The table.
    pub table: TableRef<'a>,
    /// Columns to return, in output order (already resolved to stored names).
    pub columns: &'a [Column],
    /// The client's `$filter`.
    pub filter: Option<&'a Expr>,
    /// Conditions the runtime ANDs itself (`id eq …`, `__deleted eq false`); rendered like `$filter`.
    pub extra: &'a [Expr],
    /// The client's `$orderby`.
    pub orderby: &'a [OrderBy],
    /// Column giving insertion order (R4), used when no order is given and as the final tiebreak;
    /// `None` for a statement that selects at most one row (a read by id), which needs no order.
    pub insertion_order: Option<&'a str>,
    /// `$top`.
    pub top: Option<u64>,
    /// `$skip`.
    pub skip: u64,
}

impl Select<'_> {
    fn render_where(&self, r: &Renderer<'_>, b: &mut Builder) -> Result<(), RenderError> {
        let conditions: Vec<&Expr> = self.filter.into_iter().chain(self.extra.iter()).collect();
        for (i, c) in conditions.iter().enumerate() {
            b.push(if i == 0 { " WHERE " } else { " AND " });
            r.predicate(b, c)?;
        }
        Ok(())
    }

    /// Renders the row query.
    pub fn render(&self, schema: &dyn Schema, dialect: Dialect) -> Result<Sql, RenderError> {
        let r = Renderer { schema };
        let mut b = Builder::new(dialect);
        b.push("SELECT ");
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            // Strings are read back as plain text. The alias cannot be an identifier (it has a dot), so
            // ORDER BY "name" keeps resolving to the case-insensitive table column, not to this output.
            if dialect == Dialect::Postgres && c.ty == ColType::String {
                let _ = write!(b.sql.text, "CAST({} AS text) AS \"o.{i}\"", quote(&c.name));
            } else {
                b.ident(&c.name);
            }
        }
        if self.columns.is_empty() {
            b.push("1");
        }
        b.push(" FROM ");
        self.table.render(&mut b);
        self.render_where(&r, &mut b)?;
        if !self.orderby.is_empty() || self.insertion_order.is_some() {
            b.push(" ORDER BY ");
            for (i, o) in self.orderby.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                r.order_term(&mut b, o)?;
            }
            if let Some(seq) = self.insertion_order {
                if !self.orderby.is_empty() {
                    b.push(", ");
                }
                b.ident(seq);
                // Ties follow the first term's direction, so an index on (column, insertion order)
                // serves the whole ORDER BY in either direction.
                if self.orderby.first().is_some_and(|o| o.descending) {
                    b.push(" DESC");
                }
            }
        }
        if let Some(top) = self.top {
            let _ = write!(b.sql.text, " LIMIT {top}");
        } else if self.skip > 0 {
            b.push(if dialect == Dialect::Sqlite { " LIMIT -1" } else { " LIMIT ALL" });
        }
        if self.skip > 0 {
            let _ = write!(b.sql.text, " OFFSET {}", self.skip);
        }
        Ok(b.finish())
    }

    /// Renders `SELECT COUNT(*)` over the same filter, ignoring paging (`$inlinecount=allpages`).
    pub fn render_count(&self, schema: &dyn Schema, dialect: Dialect) -> Result<Sql, RenderError> {
        let r = Renderer { schema };
        let mut b = Builder::new(dialect);
        b.push("SELECT COUNT(*) FROM ");
        self.table.render(&mut b);
        self.render_where(&r, &mut b)?;
        Ok(b.finish())
    }
}

/// Renders a standalone predicate (used for conditional updates and tests).
pub fn render_predicate(e: &Expr, schema: &dyn Schema, b: &mut Builder) -> Result<(), RenderError> {
    Renderer { schema }.predicate(b, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_filter, parse_orderby};

    fn schema() -> Vec<Column> {
        vec![
            Column { name: "id".into(), ty: ColType::String },
            Column { name: "Title".into(), ty: ColType::String },
            Column { name: "price".into(), ty: ColType::Number },
            Column { name: "done".into(), ty: ColType::Boolean },
            Column { name: "due".into(), ty: ColType::Date },
            Column { name: "__version".into(), ty: ColType::Binary },
            Column { name: "__seq".into(), ty: ColType::Integer },
        ]
    }

    fn render(filter: &str, orderby: &str, dialect: Dialect) -> Sql {
        let s = schema();
        let f = parse_filter(filter).unwrap();
        let o = if orderby.is_empty() { vec![] } else { parse_orderby(orderby).unwrap() };
        let cols = vec![s[1].clone()];
        Select {
            table: TableRef { schema: (dialect == Dialect::Postgres).then_some("t_demo"), name: "todo" },
            columns: &cols,
            filter: Some(&f),
            extra: &[],
            orderby: &o,
            insertion_order: Some("__seq"),
            top: Some(50),
            skip: 0,
        }
        .render(&s, dialect)
        .unwrap()
    }

    #[test]
    fn sqlite_rendering() {
        let q = render("title eq 'x' and done", "price desc", Dialect::Sqlite);
        assert_eq!(
            q.text,
            r#"SELECT "Title" FROM "todo" WHERE (("Title" = ? COLLATE ROOST_CI_AS) AND ("done" = 1)) ORDER BY "price" DESC, "__seq" DESC LIMIT 50"#
        );
        assert_eq!(q.params, vec![Value::Text("x".into())]);
        let q = render("done eq false", "", Dialect::Sqlite);
        assert!(q.text.contains(r#"("done" = 0)"#), "{}", q.text);
        let q = render("(title gt 'a') eq false", "", Dialect::Sqlite);
        assert!(q.text.contains("(NOT (\"Title\" > ? COLLATE ROOST_CI_AS))"), "{}", q.text);
        let q = render("title eq null or due ne null", "", Dialect::Sqlite);
        assert!(q.text.contains(r#"(("Title" IS NULL) OR ("due" IS NOT NULL))"#), "{}", q.text);
        let q = render("substringof('ab', title)", "length(title)", Dialect::Sqlite);
        assert!(q.text.contains(r#"(roost_fold(CAST("Title" AS TEXT)) LIKE ('%' || roost_fold(?) || '%'))"#), "{}", q.text);
    }

    #[test]
    fn postgres_rendering() {
        let q = render("tolower(title) eq 'x' and price div 2 gt 1.5", "toupper(title) desc", Dialect::Postgres);
        assert_eq!(
            q.text,
            r#"SELECT CAST("Title" AS text) AS "o.0" FROM "t_demo"."todo" WHERE (((CAST(lower((CAST("Title" AS text) COLLATE "C")) AS text) COLLATE roost.ci_as) = (CAST($1::text AS text) COLLATE roost.ci_as)) AND ((CAST("price" AS float8) / CAST($2::float8 AS float8)) > $3::float8)) ORDER BY (CAST(upper((CAST("Title" AS text) COLLATE "C")) AS text) COLLATE roost.ci_as) DESC NULLS LAST, "__seq" DESC LIMIT 50"#
        );
        assert_eq!(q.params.len(), 3);
        let q = render("__version eq 'AAAAAAAAB9E='", "", Dialect::Postgres);
        assert_eq!(q.params, vec![Value::Bytes(vec![0, 0, 0, 0, 0, 0, 7, 209])]);
        let q = render("due gt '2014-01-01T00:00:00Z'", "", Dialect::Postgres);
        assert!(matches!(q.params[0], Value::Date(_)));
    }

    #[test]
    fn unknown_column_is_reported() {
        let s = schema();
        let f = parse_filter("nope eq 1").unwrap();
        let sel = Select {
            table: TableRef { schema: None, name: "t" },
            columns: &[],
            filter: Some(&f),
            extra: &[],
            orderby: &[],
            insertion_order: Some("__seq"),
            top: None,
            skip: 3,
        };
        assert_eq!(sel.render(&s, Dialect::Sqlite), Err(RenderError::UnknownColumn("nope".into())));
    }
}
