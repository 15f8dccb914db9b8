//! The extractors of the tenant surface: [`TenantCall`] (the request the §1.1 pipeline prepared,
//! for a tenant that exists), [`Caller`] (keys and token → who calls, 401 on a bad token),
//! [`Master`] (the master key, else 401) and [`Permitted`] (a table operation the caller may run).
//! Handlers take them as arguments, so no handler can skip a check, and the order of the protocol's
//! errors is the order of the arguments.

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::tables::{ReadParams, TableOp};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use roost_storage::{Table, Tenant};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

/// A tenant request after the pipeline (tenant found, credentials stripped, method overrides
/// applied, body read within the limit).
pub struct TenantRequest {
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// Effective method (after `X-HTTP-Method-Override` and `_method`).
    pub method: Method,
    /// The raw path as sent (for `Location` and the bridge's base).
    pub raw_path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Request headers, without the platform's credentials.
    pub headers: HeaderMap,
    /// The body, unless the §1.1 step 3 rules say it is not parsed.
    pub body: Option<Bytes>,
    /// `http` or `https` (R8).
    pub scheme: &'static str,
}

/// The `Tenant` extractor: the tenant request the pipeline put in the request's extensions.
#[derive(Clone)]
pub struct TenantCall(pub Arc<TenantRequest>);

impl Deref for TenantCall {
    type Target = TenantRequest;
    fn deref(&self) -> &TenantRequest {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantCall {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // The tenant route's template goes on the request's span (the pipeline ran before routing).
        if let Some(m) = parts.extensions.get::<axum::extract::MatchedPath>() {
            crate::telemetry::record_route(m.as_str());
        }
        parts.extensions.get::<TenantCall>().cloned().ok_or_else(|| ApiError::Internal("a tenant route outside the tenant pipeline".into()))
    }
}

/// Authenticates the caller from the request's keys and token (§5.1, §5.3).
pub fn authenticate(r: &TenantRequest) -> crate::error::Result<Caller> {
    let t = &r.tenant.record;
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    let mut caller = Caller {
        master: header("x-zumo-master").is_some_and(|k| auth::secrets_equal(k, &t.master_key)),
        application: header("x-zumo-application").is_some_and(|k| auth::secrets_equal(k, &t.application_key)),
        user: None,
    };
    if let Some(token) = r.headers.get("x-zumo-auth") {
        let token = token.to_str().map_err(|_| ApiError::Unauthorized("Invalid token format. Expected Envelope.Claims.Signature.".into()))?;
        caller.user = Some(auth::validate_token(r.tenant.token_key(), token).map_err(|m| ApiError::Unauthorized(m.into()))?);
    }
    Ok(caller)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        authenticate(&*TenantCall::from_request_parts(parts, state).await?)
    }
}

/// A caller with the master key (jobs, diagnostics); anyone else is 401.
pub struct Master;

impl<S: Send + Sync> FromRequestParts<S> for Master {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            c if c.master => Ok(Master),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// A table operation, as a type ([`Permitted`]'s parameter).
pub trait Operation: Send + Sync + 'static {
    /// The operation.
    const OP: TableOp;
}

macro_rules! operations {
    ($($name:ident),*) => {$(
        #[doc = concat!("The `", stringify!($name), "` operation of a table.")]
        pub struct $name;
        impl Operation for $name {
            const OP: TableOp = TableOp::$name;
        }
    )*};
}
operations!(Read, Insert, Update, Delete, Undelete);

/// A table operation the caller may perform, checked in the order of §1.1: the table exists (404),
/// the query parses (400), the credentials are valid (401), the table's permission for the
/// operation allows the caller (401; `noScript` needs the master key).
pub struct Permitted<O> {
    /// The request.
    pub req: TenantCall,
    /// The table.
    pub table: Arc<Table>,
    /// The query-string parameters.
    pub params: ReadParams,
    /// Who calls.
    pub caller: Caller,
    /// The item's id (`{id}`), on an item's route.
    pub id: Option<String>,
    op: PhantomData<O>,
}

impl<O> Permitted<O> {
    /// The operation.
    pub fn op(&self) -> TableOp
    where
        O: Operation,
    {
        O::OP
    }
}

/// The table a route names (`{table}`), or the protocol's 404.
pub async fn route_table(parts: &mut Parts, req: &TenantRequest) -> Result<Arc<Table>, ApiError> {
    Ok(route_item(parts, req).await?.0)
}

/// The table a route names, or the protocol's 404, and the item's id if the route names one (the
/// route's parameters read once, without copying the table's name).
pub async fn route_item(parts: &mut Parts, req: &TenantRequest) -> Result<(Arc<Table>, Option<String>), ApiError> {
    let params = RawPathParams::from_request_parts(parts, &()).await.map_err(|_| ApiError::not_found())?;
    let (mut name, mut id) = ("", None);
    for (k, v) in &params {
        match k {
            "table" => name = v,
            "id" => id = Some(v.to_string()),
            _ => {}
        }
    }
    let table = req.tenant.table(name).ok_or_else(|| ApiError::NotFound(format!("Table '{name}' does not exist.")))?;
    Ok((table, id))
}

impl<O: Operation, S: Send + Sync> FromRequestParts<S> for Permitted<O> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let req = TenantCall::from_request_parts(parts, state).await?;
        let (table, id) = route_item(parts, &req).await?;
        let params = ReadParams::parse(&req.query, req.method == Method::GET)?;
        let caller = authenticate(&req)?;
        if !caller.allows(O::OP.required(&table.record.permissions), params.no_script) {
            return Err(ApiError::unauthorized());
        }
        Ok(Permitted { req, table, params, caller, id, op: PhantomData })
    }
}
