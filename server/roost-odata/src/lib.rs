//! The OData subset of Azure Mobile Services (protocol.md §3): lexer, parser, AST, and SQL rendering
//! for SQLite and PostgreSQL. This crate does no I/O and knows nothing of sqlx or axum.
//!
//! Grammar (precedence low to high, every binary operator left-associative):
//!
//! ```text
//! expr      := or
//! or        := and ( 'or' and )*
//! and       := cmp ( 'and' cmp )*
//! cmp       := add ( ('eq'|'ne'|'gt'|'ge'|'lt'|'le') add )*
//! add       := mul ( ('add'|'sub') mul )*
//! mul       := unary ( ('mul'|'div'|'mod') unary )*
//! unary     := ('-' | 'not') unary | primary
//! primary   := start ( '/' member )*
//! start     := NAME [ '(' args ')' ] | STRING | INTEGER | REAL | '(' expr ')'
//!            | 'true' | 'false' | 'null' | 'datetime' STRING | 'datetimeoffset' STRING | 'guid' STRING
//! orderby   := expr [ 'asc' | 'desc' ] ( ',' expr [ 'asc' | 'desc' ] )*
//! ```
//!
//! Errors carry the byte offset where they were found; the server formats them as
//! `Invalid query specified. Error: <message> (at index <n>)`.
//!
//! Rendering ([`sql`]) binds every constant as a parameter and quotes every identifier after checking
//! it against the identifier rule of §2.2, so no input text ever reaches SQL unquoted.

mod lexer;
mod parser;
pub mod sql;

pub use parser::{parse_filter, parse_orderby, parse_select, MAX_CALLS, MAX_DEPTH, MAX_NODES};

use chrono::{DateTime, Utc};

/// A parse error with the byte offset of the offending token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at index {index})")]
pub struct ParseError {
    /// What went wrong, in the original runtime's words.
    pub message: String,
    /// Byte offset into the expression text.
    pub index: usize,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// Logical negation (`not`).
    Not,
    /// Arithmetic negation (`-`).
    Neg,
}

/// Binary operators, in the order of §3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    /// True for `eq ne lt le gt ge`.
    pub fn is_comparison(self) -> bool {
        matches!(self, Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge)
    }
}

/// The functions of §3.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    SubstringOf,
    StartsWith,
    EndsWith,
    IndexOf,
    Length,
    ToLower,
    ToUpper,
    Trim,
    Concat,
    Replace,
    Substring,
    Day,
    Month,
    Year,
    Hour,
    Minute,
    Second,
    Floor,
    Ceiling,
    Round,
}

impl Func {
    /// Looks a function up by its (case-sensitive, lower-case) OData name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "substringof" => Self::SubstringOf,
            "startswith" => Self::StartsWith,
            "endswith" => Self::EndsWith,
            "indexof" => Self::IndexOf,
            "length" => Self::Length,
            "tolower" => Self::ToLower,
            "toupper" => Self::ToUpper,
            "trim" => Self::Trim,
            "concat" => Self::Concat,
            "replace" => Self::Replace,
            "substring" => Self::Substring,
            "day" => Self::Day,
            "month" => Self::Month,
            "year" => Self::Year,
            "hour" => Self::Hour,
            "minute" => Self::Minute,
            "second" => Self::Second,
            "floor" => Self::Floor,
            "ceiling" => Self::Ceiling,
            "round" => Self::Round,
            _ => return None,
        })
    }

    /// The OData name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SubstringOf => "substringof",
            Self::StartsWith => "startswith",
            Self::EndsWith => "endswith",
            Self::IndexOf => "indexof",
            Self::Length => "length",
            Self::ToLower => "tolower",
            Self::ToUpper => "toupper",
            Self::Trim => "trim",
            Self::Concat => "concat",
            Self::Replace => "replace",
            Self::Substring => "substring",
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
            Self::Hour => "hour",
            Self::Minute => "minute",
            Self::Second => "second",
            Self::Floor => "floor",
            Self::Ceiling => "ceiling",
            Self::Round => "round",
        }
    }

    /// Accepted argument counts (min, max).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Self::SubstringOf | Self::StartsWith | Self::EndsWith | Self::IndexOf | Self::Concat => (2, 2),
            Self::Replace => (3, 3),
            Self::Substring => (2, 3),
            _ => (1, 1),
        }
    }
}

/// A filter or order-by expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Every number is a double (§2.8).
    Number(f64),
    /// A string constant (also `guid'…'`).
    String(String),
    /// A `datetime'…'` or `datetimeoffset'…'` constant, in UTC with millisecond precision.
    DateTime(DateTime<Utc>),
    /// A column reference, as written (matched case-insensitively when rendered).
    Member(String),
    /// `not x`, `-x`
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `f(args…)`
    Call(Func, Vec<Expr>),
}

/// One `$orderby` term.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// The expression to order by.
    pub expr: Expr,
    /// True for `desc`.
    pub descending: bool,
}

/// The identifier rule of §2.2/§2.10: `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
pub fn is_valid_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The message for a name that fails [`is_valid_identifier`] (§2.2 step 8).
pub fn invalid_identifier_message(name: &str) -> String {
    format!(
        "'{name}' is not a valid identifier. Identifiers must be under 128 characters in length, start with a letter or underscore, and can contain only alpha-numeric and underscore characters."
    )
}

/// Formats a UTC instant as the protocol's date form `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses the strict date form of §2.2 step 5 (`YYYY-MM-DDTHH:MM:SS[.mmm]Z`), used both for item
/// values and for `datetime'…'` literals.
pub fn parse_strict_datetime(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let ok_len = b.len() == 20 || b.len() == 24;
    if !ok_len || b[b.len() - 1] != b'Z' {
        return None;
    }
    let digit = |i: usize| b[i].is_ascii_digit();
    let shape = (0..4).all(digit)
        && b[4] == b'-'
        && digit(5)
        && digit(6)
        && b[7] == b'-'
        && digit(8)
        && digit(9)
        && b[10] == b'T'
        && digit(11)
        && digit(12)
        && b[13] == b':'
        && digit(14)
        && digit(15)
        && b[16] == b':'
        && digit(17)
        && digit(18)
        && (b.len() == 20 || (b[19] == b'.' && digit(20) && digit(21) && digit(22)));
    if !shape {
        return None;
    }
    let naive = chrono::NaiveDateTime::parse_from_str(&s[..s.len() - 1], if b.len() == 20 { "%Y-%m-%dT%H:%M:%S" } else { "%Y-%m-%dT%H:%M:%S%.3f" }).ok()?;
    Some(naive.and_utc())
}

/// Parses the MS-JSON date form `/Date(<ms>[±hhmm])/` (§2.2 step 5).
pub fn parse_msjson_datetime(s: &str) -> Option<DateTime<Utc>> {
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let (digits, _offset) = match inner.char_indices().skip(1).find(|(_, c)| *c == '+' || *c == '-') {
        Some((i, _)) => {
            let off = &inner[i + 1..];
            if off.len() != 4 || !off.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (&inner[..i], Some(off))
        }
        None => (inner, None),
    };
    let ms: i64 = digits.parse().ok()?;
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// Parses what JavaScript's `Date.parse` commonly accepts, for `datetimeoffset'…'` literals: RFC 3339
/// with any fraction and offset, the same without seconds, and a bare date (UTC midnight).
pub fn parse_loose_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(truncate_ms(d.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(truncate_ms(d.with_timezone(&Utc)));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(truncate_ms(d.and_utc()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
    }
    None
}

/// Drops sub-millisecond precision (dates are stored with milliseconds, §2.8).
pub fn truncate_ms(d: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(d.timestamp_millis()).unwrap_or(d)
}
