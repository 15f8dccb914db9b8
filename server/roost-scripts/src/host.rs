//! The calls a script makes to its host, typed: the prelude sends each as JSON tagged with its `op`
//! (`L.hostCall` in `js/core.js`), the engine parses it into a [`HostCall`], and every failure comes
//! back as one [`HostError`], which the prelude turns into the script's `Error` (`statusCode`, and
//! the body as a 412's server item).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value as Json};

/// One asynchronous operation a script asks of the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op")]
pub enum HostCall {
    /// `request.execute()`: the HTTP request's own table operation (§6.4).
    #[serde(rename = "execute")]
    Execute(Execute),
    /// `tables.getTable(t).read()` and the query forms (§6.6).
    #[serde(rename = "table.read")]
    TableRead(TableRead),
    /// `table.lookup(id)`.
    #[serde(rename = "table.lookup")]
    TableLookup(TableLookup),
    /// `table.insert(item)`.
    #[serde(rename = "table.insert")]
    TableInsert(TableWrite),
    /// `table.update(item)`.
    #[serde(rename = "table.update")]
    TableUpdate(TableWrite),
    /// `table.del(idOrItem)`.
    #[serde(rename = "table.del")]
    TableDelete(TableDelete),
    /// `mssql.query` (§6.7): rows as objects.
    #[serde(rename = "mssql.query")]
    SqlQuery(SqlBatch),
    /// `mssql.queryRaw`: rows as arrays, with column metadata.
    #[serde(rename = "mssql.queryRaw")]
    SqlQueryRaw(SqlBatch),
    /// `require('request')`: outbound HTTP.
    #[serde(rename = "http.request")]
    HttpRequest(HttpRequest),
    /// `require('roost-auth').hashPassword`: an argon2id PHC string of a password.
    #[serde(rename = "password.hash")]
    PasswordHash(PasswordHash),
    /// `require('roost-auth').verifyPassword`: whether a password matches a PHC string.
    #[serde(rename = "password.verify")]
    PasswordVerify(PasswordVerify),
    /// `push.send` and its platform forms (§7.1): a send queued in the durable outbox.
    #[serde(rename = "push.send")]
    PushSend(PushSend),
    /// The Notification Hubs registration methods of `push` (§7.1): `createRegistrationId`,
    /// `getRegistration`, `createOrUpdateRegistration`, `listRegistrationsByTag`, ….
    #[serde(rename = "push.registrations")]
    PushRegistrations(PushRegistrations),
}

/// `push.*Registration*` arguments: what the script asks of the tenant's registrations.
#[derive(Debug, Clone, Deserialize)]
pub struct PushRegistrations {
    /// The operation.
    pub action: RegistrationAction,
}

/// One registration operation (the server's `push::scripts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegistrationAction {
    /// A new, empty registration id.
    CreateId,
    /// One registration.
    Get { id: String },
    /// Removes one.
    Delete { id: String },
    /// Stores a registration under its id, which the tenant must hold: `create` takes a reserved id
    /// (or, with none given, reserves one); otherwise the registration must be filled already.
    Put { registration: Json, create: bool },
    /// A new registration for a device handle (`createNativeRegistration`,
    /// `createTemplateRegistration`).
    Create { platform: String, handle: Json, tags: Json, template: Option<Json>, template_name: Option<String> },
    /// Registrations, newest first, optionally with a tag, or a platform and device handle.
    List { tag: Option<String>, platform: Option<String>, handle: Option<String>, top: Option<i64>, skip: Option<i64> },
}

/// `push.send` arguments (what they mean is the server's `push::send`).
#[derive(Debug, Clone, Deserialize)]
pub struct PushSend {
    /// `template`, `webpush`, `gcm`, `apns`, `wns` or `mpns`.
    pub platform: String,
    /// `null`, a tag, a tag expression or an array of tags.
    #[serde(default)]
    pub tags: Json,
    /// Template properties or the native payload.
    #[serde(default)]
    pub payload: Json,
    /// `ttl` (seconds), `urgency` (`very-low`, `low`, `normal`, `high`), `topic` (Web Push).
    #[serde(default)]
    pub options: Map<String, Json>,
}

/// `password.hash` arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct PasswordHash {
    /// The password.
    pub password: String,
}

/// `password.verify` arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct PasswordVerify {
    /// The password.
    pub password: String,
    /// The PHC string `hashPassword` gave.
    pub hash: String,
}

/// Which operation `request.execute()` performs; always the request's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecuteOp {
    /// A read or a read by id.
    Read,
    /// An insert.
    Insert,
    /// An update (or an undelete).
    Update,
    /// A delete.
    Del,
}

/// The arguments of `request.execute()`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execute {
    /// The operation (the request's).
    pub operation: ExecuteOp,
    /// The system properties to answer.
    #[serde(default)]
    pub system_properties: Vec<String>,
    /// Soft-deleted rows too (reads).
    #[serde(default)]
    pub include_deleted: bool,
    /// The query of a read.
    #[serde(default)]
    pub query: QueryArgs,
    /// The id of a read by id or a delete.
    #[serde(default)]
    pub id: Json,
    /// The version of a delete (`null` for the request's own `If-Match`).
    #[serde(default, deserialize_with = "text")]
    pub version: Option<String>,
    /// The item of an insert or update.
    #[serde(default)]
    pub item: Json,
}

/// A query as the prelude's `Query` holds it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryArgs {
    /// OData filters, joined with `and`.
    #[serde(default)]
    pub filters: Vec<String>,
    /// `[expression, ascending]` pairs.
    #[serde(default)]
    pub ordering: Vec<(String, bool)>,
    /// Selected columns.
    #[serde(default)]
    pub selections: Vec<String>,
    /// Rows skipped (a value that is not a count is ignored).
    #[serde(default, deserialize_with = "count")]
    pub skip: Option<u64>,
    /// Rows taken (a value that is not a count is ignored).
    #[serde(default, deserialize_with = "count")]
    pub take: Option<u64>,
    /// Count the matching rows too.
    #[serde(default)]
    pub include_total_count: bool,
}

/// `table.read` arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRead {
    /// The table.
    pub table: String,
    /// The query.
    #[serde(flatten)]
    pub query: QueryArgs,
    /// The system properties to answer.
    #[serde(default)]
    pub system_properties: Vec<String>,
    /// Soft-deleted rows too.
    #[serde(default)]
    pub include_deleted: bool,
}

/// `table.lookup` arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableLookup {
    /// The table.
    pub table: String,
    /// The id.
    pub id: Json,
    /// The system properties to answer.
    #[serde(default)]
    pub system_properties: Vec<String>,
}

/// `table.insert` and `table.update` arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableWrite {
    /// The table.
    pub table: String,
    /// The item (an update's has its `id`, and its `__version` as the condition).
    pub item: Json,
    /// The system properties to answer.
    #[serde(default)]
    pub system_properties: Vec<String>,
}

/// `table.del` arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct TableDelete {
    /// The table.
    pub table: String,
    /// The id.
    pub id: Json,
    /// The item's `__version`, the condition of the delete.
    #[serde(default, deserialize_with = "text")]
    pub version: Option<String>,
}

/// `mssql.query` / `mssql.queryRaw` arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct SqlBatch {
    /// The T-SQL batch.
    pub sql: String,
    /// Its `?` parameters (`{"$date"}` and `{"$bytes"}` carry dates and buffers).
    #[serde(default)]
    pub params: Vec<Json>,
}

/// `http.request` arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequest {
    /// The method.
    #[serde(default = "get")]
    pub method: String,
    /// The URL.
    #[serde(default)]
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: Map<String, Json>,
    /// The body, as text.
    #[serde(default)]
    pub body: Option<String>,
    /// The timeout (a value that is not a count means the default).
    #[serde(default, deserialize_with = "count")]
    pub timeout_ms: Option<u64>,
}

fn get() -> String {
    "GET".into()
}

/// A JSON number that is a whole, non-negative count, or `None` for anything else (as JavaScript's
/// loose values arrive).
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Json::deserialize(d)?.as_u64())
}

/// A JSON string, or `None` for any other value.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Json::deserialize(d)? {
        Json::String(s) => Some(s),
        _ => None,
    })
}

/// A failed host call, as the script sees it: the HTTP status, the protocol's error body (or, for a
/// 412, the server's item), and a message where the body has none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostError {
    /// HTTP status (`err.statusCode`).
    pub status: u16,
    /// The message, where the body does not carry one (`err.message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `{"code", "error"}`, or a conflict's server item.
    pub body: Json,
}

impl HostError {
    /// An error with a protocol body `{"code": status, "error": "Error: <message>"}`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { status, body: serde_json::json!({ "code": status, "error": format!("Error: {message}") }), message: Some(message) }
    }

    /// An error with a body of its own.
    pub fn with_body(status: u16, body: Json) -> Self {
        Self { status, message: None, body }
    }
}
