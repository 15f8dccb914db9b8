//! The table service: the one home of the table operations' rules (protocol.md §2). It validates,
//! converts, stores and builds the echo of each [`TableOp`], with the system properties asked for,
//! the version as `ETag`, and the protocol's errors (not-found items, dynamic-schema reads).
//!
//! Its callers are thin adapters: `http/tables.rs` (the wire: query strings, bodies, headers,
//! `Location`, scripts), the script host (`request.execute()`, `tables.*`, in `scripting.rs`) and,
//! through the HTTP pipeline, the portal's rows route. It knows nothing of HTTP or JavaScript.

pub mod item;
pub mod query;
pub mod wire;

use crate::error::{ApiError, Result};
use roost_api::{IdKind, Permission, TablePermissions};
use roost_odata::sql::Value;
use roost_storage::items::{Item, Query, Row, SystemProps, Written};
use roost_storage::{StorageError, Table, Tenant};
use serde_json::{Map, Value as Json};

pub use item::Converted;
pub use query::{ReadParams, ReadQuery};

/// The operation a table request maps to (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOp {
    /// `GET /tables/{t}[/{id}]`.
    Read,
    /// `POST /tables/{t}`.
    Insert,
    /// `PATCH /tables/{t}/{id}`.
    Update,
    /// `DELETE /tables/{t}/{id}`.
    Delete,
    /// `POST /tables/{t}/{id}` on a soft-delete table (§2.5).
    Undelete,
}

impl TableOp {
    /// The permission the operation needs (an undelete is an insert's, §2.5).
    pub fn required(self, p: &TablePermissions) -> Permission {
        match self {
            TableOp::Read => p.read,
            TableOp::Insert | TableOp::Undelete => p.insert,
            TableOp::Update => p.update,
            TableOp::Delete => p.delete,
        }
    }

    /// The script that runs for the operation: `<table>.<name>.js` (an undelete runs the update's).
    pub fn script_name(self) -> &'static str {
        match self {
            TableOp::Read => "read",
            TableOp::Insert => "insert",
            TableOp::Update | TableOp::Undelete => "update",
            TableOp::Delete => "delete",
        }
    }

    /// The script's `request.operation` (§6.3): the function the script defines.
    pub fn script_operation(self) -> &'static str {
        match self {
            TableOp::Delete => "del",
            other => other.script_name(),
        }
    }
}

/// A page of a read.
#[derive(Debug)]
pub struct Page {
    /// The rows.
    pub rows: Vec<Row>,
    /// The total count, when asked for.
    pub count: Option<i64>,
    /// The query named a column the table does not have (yet): under dynamic schema that matches
    /// nothing (§2.3), and the wire answers `[]` even with `$inlinecount`.
    pub unknown_column: bool,
}

/// What a write stored, and the echo the protocol answers with.
#[derive(Debug)]
pub struct Saved {
    /// The item's id.
    pub id: Value,
    /// `id` and the system properties asked for, in the order they are answered.
    pub props: Vec<(&'static str, Value)>,
}

impl Saved {
    /// The version the echo shows, base64: the answer's `ETag` (§2.6) when it has one.
    pub fn etag(&self) -> Option<String> {
        self.props.iter().find(|(n, _)| *n == "__version").and_then(|(_, v)| match v {
            Value::Bytes(b) => Some(wire::etag_of(&crate::auth::version_b64(b))),
            _ => None,
        })
    }

    /// The wire echo: the converted body's members (client order), then `id` and the properties.
    pub fn echo(&self, mut members: Map<String, Json>) -> Json {
        for (name, v) in &self.props {
            members.insert((*name).to_string(), wire::value_to_json(v.clone()));
        }
        Json::Object(members)
    }

    /// The properties as a script sees them (the prelude merges them into its item).
    pub fn for_script(self) -> Json {
        Json::Object(self.props.into_iter().map(|(n, v)| (n.to_string(), wire::value_for_script(v, false))).collect())
    }
}

/// The service for one table of one tenant.
pub struct TableService<'a> {
    tenant: &'a Tenant,
    table: &'a Table,
}

impl<'a> TableService<'a> {
    /// The service of `table`.
    pub fn new(tenant: &'a Tenant, table: &'a Table) -> Self {
        Self { tenant, table }
    }

    /// True for tables with string ids, which have versions and system properties (§2.7).
    pub fn versioned(&self) -> bool {
        self.table.record.id_kind == IdKind::String
    }

    /// The system properties the table can give, of those asked for.
    pub fn system(&self, asked: SystemProps) -> SystemProps {
        let mut s = if self.versioned() { asked } else { SystemProps::default() };
        s.deleted &= self.table.record.soft_delete;
        s
    }

    /// Reads a page, or the item with `q.id` (then `rows` has at most one row the caller checks).
    pub async fn read(&self, q: &ReadQuery) -> Result<Page> {
        let system = if self.versioned() { q.system } else { SystemProps::default() };
        let query = Query {
            filter: q.filter.as_ref(),
            orderby: &q.orderby,
            select: q.select.as_deref(),
            system,
            include_deleted: q.include_deleted,
            top: q.top,
            skip: q.skip,
            id: q.id.clone(),
            count: q.count,
        };
        match self.tenant.query(self.table, &query).await {
            Ok((rows, count)) => Ok(Page { rows, count, unknown_column: false }),
            // §2.3: an unknown column matches nothing under dynamic schema, and is a 400 otherwise.
            Err(StorageError::UnknownColumn(_)) if self.tenant.record.settings.dynamic_schema => {
                Ok(Page { rows: Vec::new(), count: q.count.then_some(0), unknown_column: true })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads one item by id: 404 naming it if there is none.
    pub async fn lookup(&self, q: &ReadQuery) -> Result<Row> {
        let id = q.id.as_ref().map(item::shown_id).unwrap_or_default();
        self.read(q).await?.rows.into_iter().next().ok_or_else(|| ApiError::item_not_found(&id))
    }

    /// Inserts a converted item (§2.2).
    pub async fn insert(&self, item: Item, asked: SystemProps) -> Result<Saved> {
        let written = self.tenant.insert(self.table, item).await?;
        Ok(self.saved(written, self.system(asked), None, false))
    }

    /// Updates the item `id` with a converted patch, if its version is `if_match` (§2.4, §2.6).
    pub async fn update(&self, id: &Value, item: Item, if_match: Option<&[u8]>, asked: SystemProps) -> Result<Saved> {
        self.write(id, item, if_match, asked, false).await
    }

    /// Restores a soft-deleted item (§2.5).
    pub async fn undelete(&self, id: &Value, if_match: Option<&[u8]>, asked: SystemProps) -> Result<Saved> {
        if !self.table.record.soft_delete {
            return Err(ApiError::BadInput(crate::error::msg::UNDELETE_UNSUPPORTED.into()));
        }
        self.write(id, Item::new(), if_match, asked, true).await
    }

    /// Deletes the item `id` (soft on soft-delete tables), if its version is `if_match` (§2.5).
    pub async fn delete(&self, id: &Value, if_match: Option<&[u8]>) -> Result<()> {
        let tag = if self.versioned() { if_match } else { None };
        self.tenant.delete(self.table, id, tag).await.map_err(|e| not_found_as_item(e.into(), id))
    }

    async fn write(&self, id: &Value, item: Item, if_match: Option<&[u8]>, asked: SystemProps, undelete: bool) -> Result<Saved> {
        let tag = if self.versioned() { if_match } else { None };
        let written = self.tenant.update(self.table, id, item, tag, undelete).await.map_err(|e| not_found_as_item(e.into(), id))?;
        let mut system = self.system(asked);
        // A conditional write answers the new version (§2.6).
        system.version |= tag.is_some();
        let extra = if system.created_at || (system.deleted && !undelete) { self.tenant.read_full(self.table, id).await? } else { None };
        Ok(self.saved(written, system, extra.as_ref(), undelete))
    }

    fn saved(&self, w: Written, system: SystemProps, extra: Option<&Row>, undelete: bool) -> Saved {
        let from_row = |name: &str| extra.and_then(|r| r.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()));
        let mut props = vec![("id", w.id.clone())];
        if undelete {
            props.push(("__deleted", Value::Bool(false)));
        }
        let mut put = |name: &'static str, v: Option<Value>| {
            if let Some(v) = v {
                match props.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = v,
                    None => props.push((name, v)),
                }
            }
        };
        if system.created_at {
            put("__createdAt", w.created_at.map(Value::Date).or_else(|| from_row("__createdAt")));
        }
        if system.updated_at {
            put("__updatedAt", w.updated_at.map(Value::Date).or_else(|| from_row("__updatedAt")));
        }
        if system.version {
            put("__version", w.version.clone().map(Value::Bytes));
        }
        if system.deleted {
            put("__deleted", from_row("__deleted").or(Some(Value::Bool(false))));
        }
        Saved { id: w.id, props }
    }
}

/// Storage reports a missing row as a bare 404; the protocol names the item.
fn not_found_as_item(e: ApiError, id: &Value) -> ApiError {
    match e {
        ApiError::NotFound(m) if m == crate::error::msg::NOT_FOUND => ApiError::item_not_found(&item::shown_id(id)),
        other => other,
    }
}
