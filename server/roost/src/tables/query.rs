//! A table read's parameters: the query string of §2.11 parsed and validated ([`ReadParams`]), and
//! the typed read the service runs ([`ReadQuery`]).

use super::item::parse_system_properties;
use crate::error::{msg, ApiError, Result};
use roost_odata::sql::Value;
use roost_odata::{Expr, OrderBy};
use roost_storage::items::SystemProps;

/// The query-string parameters of a table request (§2.11).
#[derive(Debug, Default)]
pub struct ReadParams {
    /// `$filter`.
    pub filter: Option<Expr>,
    /// `$orderby`.
    pub orderby: Vec<OrderBy>,
    /// `$orderby` was given (a read by id refuses it).
    pub has_orderby: bool,
    /// `$select`.
    pub select: Option<Vec<String>>,
    /// `$top`, unparsed.
    pub top: Option<String>,
    /// `$skip`, unparsed.
    pub skip: Option<String>,
    /// `$inlinecount`, unparsed.
    pub inlinecount: Option<String>,
    /// `__systemproperties`.
    pub system: SystemProps,
    /// `__includedeleted=true`.
    pub include_deleted: bool,
    /// `noScript` (master key only, §6.3).
    pub no_script: bool,
    /// Custom parameters (§2.11), in order, for scripts (`request.parameters`).
    pub parameters: Vec<(String, String)>,
}

fn invalid_query(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadInput(format!("Invalid query specified. Error: {e}"))
}

impl ReadParams {
    /// Parses a table request's query parameters; the OData options only count on a `GET`.
    pub fn parse(query: &[(String, String)], is_get: bool) -> Result<Self> {
        let mut p = ReadParams::default();
        for (k, v) in query {
            let given = is_get && !v.trim().is_empty();
            match k.as_str() {
                "$filter" if given => p.filter = Some(roost_odata::parse_filter(v).map_err(invalid_query)?),
                "$orderby" if given => {
                    p.orderby = roost_odata::parse_orderby(v).map_err(invalid_query)?;
                    p.has_orderby = true;
                }
                "$select" if given => p.select = Some(roost_odata::parse_select(v).map_err(invalid_query)?),
                "$filter" | "$orderby" | "$select" => {}
                "$top" => p.top = Some(v.clone()),
                "$skip" => p.skip = Some(v.clone()),
                "$inlinecount" => p.inlinecount = Some(v.clone()),
                _ => {
                    let lower = k.to_ascii_lowercase();
                    if lower == "__systemproperties" {
                        p.system = parse_system_properties(v)?;
                    } else if lower == "__includedeleted" {
                        p.include_deleted = v.eq_ignore_ascii_case("true");
                    } else if lower == "noscript" {
                        p.no_script = !v.is_empty();
                        p.parameters.push((k.clone(), v.clone()));
                    } else if k.starts_with('$') || k.starts_with("__") {
                        return Err(ApiError::BadInput(format!(
                            "Invalid query parameter name '{k}'. Custom query parameter names must not start with $ or __."
                        )));
                    } else {
                        p.parameters.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        Ok(p)
    }

    /// `$top` (default 50, at most 1000), `$skip` and `$inlinecount`, validated (§2.11); a read by
    /// id takes none of them (`None` where absent).
    pub fn paging(&self, by_id: bool) -> Result<(Option<u64>, Option<u64>, bool)> {
        if by_id {
            if self.has_orderby || self.inlinecount.is_some() || self.skip.is_some() || self.top.is_some() {
                return Err(ApiError::BadInput(msg::ID_QUERY_OPTIONS.into()));
            }
            return Ok((None, None, false));
        }
        let top = match &self.top {
            None => 50,
            Some(v) => {
                let n = parse_count(v, "$top")?;
                if n > 1000 {
                    return Err(ApiError::BadInput(msg::TOP_MAX.into()));
                }
                if n < 0 {
                    return Err(ApiError::BadInput(msg::TOP_NEGATIVE.into()));
                }
                n as u64
            }
        };
        let skip = self.skip.as_deref().map(|v| parse_count(v, "$skip")).transpose()?.map(|s| s.max(0) as u64);
        let count = match self.inlinecount.as_deref() {
            None | Some("none") => false,
            Some("allpages") => true,
            Some(_) => return Err(ApiError::BadInput(msg::INLINECOUNT.into())),
        };
        Ok((Some(top), skip, count))
    }

    /// The read these parameters ask for (validated paging included).
    pub fn into_query(self, id: Option<Value>) -> Result<ReadQuery> {
        let (top, skip, count) = self.paging(id.is_some())?;
        Ok(ReadQuery {
            filter: self.filter,
            orderby: self.orderby,
            select: self.select,
            system: self.system,
            include_deleted: self.include_deleted,
            top: Some(top.unwrap_or(1)),
            skip: skip.unwrap_or(0),
            id,
            count,
        })
    }
}

fn parse_count(v: &str, name: &str) -> Result<i64> {
    let t = v.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadInput(format!("The value specified for '{name}' must be a number.")));
    }
    // Out-of-range values are still numbers: saturate, the limits decide.
    Ok(t.parse::<i64>().unwrap_or(if t.starts_with('-') { i64::MIN } else { i64::MAX }))
}

/// A read, as the service runs it.
#[derive(Debug, Default)]
pub struct ReadQuery {
    /// The filter.
    pub filter: Option<Expr>,
    /// The order.
    pub orderby: Vec<OrderBy>,
    /// The columns; `None` for all.
    pub select: Option<Vec<String>>,
    /// The system properties asked for (the service keeps those the table has).
    pub system: SystemProps,
    /// Soft-deleted rows too.
    pub include_deleted: bool,
    /// At most this many rows (`None`: no limit, as `tables.*` reads without `take`).
    pub top: Option<u64>,
    /// Rows skipped.
    pub skip: u64,
    /// Only the row with this id.
    pub id: Option<Value>,
    /// Count the matching rows too.
    pub count: bool,
}
