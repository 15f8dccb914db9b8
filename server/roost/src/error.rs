//! The protocol's error model (protocol.md §4) in one place: every tenant-endpoint failure becomes an
//! [`ApiError`], and only [`IntoResponse`] here decides its status and body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_storage::items::WriteError;
use roost_storage::StorageError;

/// Exact messages clients may compare (§2, §4).
pub mod msg {
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const NOT_FOUND: &str = "Not Found";
    pub const BAD_REQUEST: &str = "Bad request.";
    pub const INTERNAL: &str = "Internal Server Error";
    pub const TIMEOUT: &str = "The request has timed out.";
    pub const TOO_LARGE: &str = "Request body maximum size limit was exceeded.";
    pub const DUPLICATE: &str = "Could not insert the item because an item with that id already exists.";
    pub const SINGLE_OBJECT: &str = "A single (valid) JSON object is expected.";
    pub const ID_CASING: &str = "Item identifiers can only be specified via the 'id' property.";
    pub const ID_STRING: &str = "The value specified for property 'id' must be a string";
    pub const ID_INVALID: &str =
        "The value specified for property 'id' is invalid. An id must not contain any control characters or the characters \",+,?,\\,`.";
    pub const ID_TOO_LONG: &str =
        "Could not save item because it exceeds a maximum column size restriction. Note that indexed columns are restricted to 450 characters.";
    pub const ID_NOT_ALLOWED: &str = "A value cannot be specified for property 'id'";
    pub const ID_NUMBER: &str = "The value specified for 'id' must be a number.";
    pub const ID_REQUIRED: &str = "An id value must be specified in the URL for an update operation.";
    pub const ID_MISMATCH: &str = "When specified in the body, 'id' must match the id specified in the url.";
    pub const TOP_MAX: &str = "The value of the $top query option cannot exceed 1000.";
    pub const TOP_NEGATIVE: &str = "The value of the $top query option must be greater or equal to 0.";
    pub const INLINECOUNT: &str = "The value specified for inlinecount must be either 'allpages' or 'none'.";
    pub const ID_QUERY_OPTIONS: &str = "Query options $orderby, $inlinecount, $skip and $top cannot be applied to id queries.";
    pub const INVALID_COLUMN: &str = "Invalid column name specified in query.";
    pub const IF_MATCH_INVALID: &str = "Invalid 'if-match' header.";
    pub const IF_MATCH_MULTIPLE: &str = "Only single etag 'if-match' headers are supported.";
    pub const UNDELETE_UNSUPPORTED: &str = "The undelete operation is not supported on this table.";
    pub const UNDELETE_CONTENT: &str = "An undelete request must not have content.";
    pub const RATE_LIMITED: &str = "This service has received too many requests; try again later.";
    pub const DAILY_QUOTA: &str = "This service has used its daily quota of API calls; it resets at 00:00 UTC.";
    pub const HTTPS_REQUIRED: &str = "HTTPS connections are required for this service. Please update your endpoint to use the https protocol.";
    // Login (§5.5).
    pub fn login_not_supported(provider: &str) -> String {
        format!("Authentication with '{provider}' is not supported.")
    }
    pub fn login_not_enabled(provider: &str) -> String {
        format!("Logging in with {provider} is not enabled.")
    }
    pub fn not_whitelisted(origin: &str) -> String {
        format!("Not a whitelisted origin: {origin}")
    }
    pub fn redirect_without_state(provider: &str) -> String {
        format!("Redirect from {provider} does not contain the required state parameter.")
    }
    pub fn redirect_without_state_cookie(provider: &str) -> String {
        format!("Redirect from {provider} does not contain the required wams_state cookie.")
    }
    pub fn redirect_bad_state(provider: &str) -> String {
        format!("Redirect from {provider} does not contain a valid state parameter.")
    }
    pub fn post_needs(provider: &str, what: &str) -> String {
        format!("The POST {provider} login request must contain {what} in the body of the request.")
    }
    pub const FACEBOOK_POST_NEEDS_TOKEN: &str = "The POST Facebook login request must specify the access token in the body of the request.";
    pub const TOKEN_REPLAYED: &str = "The token has already been used.";
    pub const TOO_MANY_LOGINS: &str = "Too many login requests. Try again later.";
    pub const VERSION_REJECTED: &str = "This version (1.0.0) of the server does not support the use of the zumo-api-version in the request.  For more information and supported clients see: http://go.microsoft.com/fwlink/?LinkID=690568#1.0.0";
}

/// A failed tenant request.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with a specific message (validation, OData, ids, …).
    BadInput(String),
    /// 400 `Bad request.`: a database refused the values (§2.8).
    BadRequest,
    /// 400 plain-text body (`ZUMO-API-VERSION`, §1.1 step 2).
    VersionRejected,
    /// 403 plain-text body (`require_https`, §1.1 step 1).
    HttpsRequired,
    /// 400 with a body that is not `Error:`-prefixed (JSON syntax errors keep their own prefix).
    Syntax(String),
    /// 401 with a message (`Unauthorized` or a token message).
    Unauthorized(String),
    /// 403 with a message (a limit of the service reached).
    Forbidden(String),
    /// 404 with a message.
    NotFound(String),
    /// 405 with an `Allow` header and an empty body.
    MethodNotAllowed(&'static str),
    /// 409 duplicate id.
    Duplicate,
    /// 410 with a message (a push registration id that is gone: the client makes a new one).
    Gone(String),
    /// 412 with the current server item as a bare JSON body and its ETag.
    PreconditionFailed(serde_json::Value),
    /// 413.
    TooLarge,
    /// 429 with `Retry-After` (seconds).
    TooManyRequests(u64),
    /// 429 with `Retry-After` (seconds): over the tier's request rate.
    RateLimited(u64),
    /// 500; the cause is logged, never sent.
    Internal(String),
    /// 503 timeout.
    Timeout,
}

/// `Result` with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(msg::UNAUTHORIZED.into())
    }

    /// 404 `Not Found`.
    pub fn not_found() -> Self {
        Self::NotFound(msg::NOT_FOUND.into())
    }

    /// 404 for a missing item.
    pub fn item_not_found(id: &str) -> Self {
        Self::NotFound(format!("An item with id '{id}' does not exist."))
    }
}

impl ApiError {
    /// The status and JSON body of the error, as a script sees a failed operation (plain-text and
    /// header-only errors get a protocol-shaped body).
    pub fn status_and_body(self) -> (u16, serde_json::Value) {
        let e = |status: StatusCode, m: String| (status.as_u16(), serde_json::json!({ "code": status.as_u16(), "error": m }));
        match self {
            ApiError::BadInput(m) => e(StatusCode::BAD_REQUEST, format!("Error: {m}")),
            ApiError::BadRequest => e(StatusCode::BAD_REQUEST, format!("Error: {}", msg::BAD_REQUEST)),
            ApiError::Syntax(m) => e(StatusCode::BAD_REQUEST, m),
            ApiError::VersionRejected => e(StatusCode::BAD_REQUEST, msg::VERSION_REJECTED.into()),
            ApiError::HttpsRequired => e(StatusCode::FORBIDDEN, msg::HTTPS_REQUIRED.into()),
            ApiError::Unauthorized(m) => e(StatusCode::UNAUTHORIZED, format!("Error: {m}")),
            ApiError::NotFound(m) => e(StatusCode::NOT_FOUND, format!("Error: {m}")),
            ApiError::Forbidden(m) => e(StatusCode::FORBIDDEN, format!("Error: {m}")),
            ApiError::Gone(m) => e(StatusCode::GONE, format!("Error: {m}")),
            ApiError::MethodNotAllowed(_) => e(StatusCode::METHOD_NOT_ALLOWED, "Error: Method Not Allowed".into()),
            ApiError::Duplicate => e(StatusCode::CONFLICT, format!("Error: {}", msg::DUPLICATE)),
            ApiError::PreconditionFailed(item) => (412, item),
            ApiError::TooLarge => e(StatusCode::PAYLOAD_TOO_LARGE, format!("Error: {}", msg::TOO_LARGE)),
            ApiError::TooManyRequests(_) => e(StatusCode::TOO_MANY_REQUESTS, format!("Error: {}", msg::TOO_MANY_LOGINS)),
            ApiError::RateLimited(_) => e(StatusCode::TOO_MANY_REQUESTS, format!("Error: {}", msg::RATE_LIMITED)),
            ApiError::Internal(cause) => {
                tracing::error!(error.cause = %cause, "A script's operation failed with an internal error");
                e(StatusCode::INTERNAL_SERVER_ERROR, format!("Error: {}", msg::INTERNAL))
            }
            ApiError::Timeout => e(StatusCode::SERVICE_UNAVAILABLE, format!("Error: {}", msg::TIMEOUT)),
        }
    }
}

fn json_error(status: StatusCode, error: String) -> Response {
    let body = serde_json::json!({ "code": status.as_u16(), "error": error }).to_string();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadInput(m) => json_error(StatusCode::BAD_REQUEST, format!("Error: {m}")),
            ApiError::BadRequest => json_error(StatusCode::BAD_REQUEST, format!("Error: {}", msg::BAD_REQUEST)),
            ApiError::Syntax(m) => json_error(StatusCode::BAD_REQUEST, m),
            ApiError::VersionRejected => {
                (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))], msg::VERSION_REJECTED).into_response()
            }
            ApiError::HttpsRequired => {
                (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))], msg::HTTPS_REQUIRED).into_response()
            }
            ApiError::Unauthorized(m) => json_error(StatusCode::UNAUTHORIZED, format!("Error: {m}")),
            ApiError::NotFound(m) => json_error(StatusCode::NOT_FOUND, format!("Error: {m}")),
            ApiError::Forbidden(m) => json_error(StatusCode::FORBIDDEN, format!("Error: {m}")),
            ApiError::Gone(m) => json_error(StatusCode::GONE, format!("Error: {m}")),
            ApiError::MethodNotAllowed(allow) => (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, HeaderValue::from_static(allow))]).into_response(),
            ApiError::Duplicate => json_error(StatusCode::CONFLICT, format!("Error: {}", msg::DUPLICATE)),
            ApiError::PreconditionFailed(item) => {
                let etag = crate::tables::wire::etag_of_item(&item);
                let mut r =
                    (StatusCode::PRECONDITION_FAILED, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], item.to_string()).into_response();
                if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
                    r.headers_mut().insert(header::ETAG, v);
                }
                r
            }
            ApiError::TooLarge => json_error(StatusCode::PAYLOAD_TOO_LARGE, format!("Error: {}", msg::TOO_LARGE)),
            ApiError::TooManyRequests(wait) => {
                let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, format!("Error: {}", msg::TOO_MANY_LOGINS));
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
                r
            }
            ApiError::RateLimited(wait) => {
                let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, format!("Error: {}", msg::RATE_LIMITED));
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
                r
            }
            ApiError::Internal(cause) => {
                // Logged once, with the request's span, by the trace layer (crate::telemetry).
                let mut r = json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("Error: {}", msg::INTERNAL));
                r.extensions_mut().insert(crate::telemetry::InternalCause(cause));
                r
            }
            ApiError::Timeout => json_error(StatusCode::SERVICE_UNAVAILABLE, format!("Error: {}", msg::TIMEOUT)),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BadInput(m) => ApiError::BadInput(m),
            StorageError::Conversion => ApiError::BadRequest,
            StorageError::Duplicate => ApiError::Duplicate,
            StorageError::IdTooLong => ApiError::BadInput(msg::ID_TOO_LONG.into()),
            StorageError::UnknownColumn(_) => ApiError::BadInput(msg::INVALID_COLUMN.into()),
            StorageError::NotFound => ApiError::not_found(),
            StorageError::AlreadyExists(what) => ApiError::BadInput(format!("{what} already exists.")),
            StorageError::Timeout => ApiError::Timeout,
            // A statement the database refused because of the client's values (§4.2: "Bad request.").
            StorageError::Sql(sqlx::Error::Database(d)) => {
                tracing::debug!(error.cause = %d, "Database refused a statement");
                ApiError::BadRequest
            }
            StorageError::Database(m) | StorageError::UniqueViolation(m) => {
                tracing::debug!(error.cause = %m, "Database refused a statement");
                ApiError::BadRequest
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Storage(s) => s.into(),
            WriteError::Conflict(row) => ApiError::PreconditionFailed(crate::tables::wire::row_to_json(row)),
        }
    }
}
