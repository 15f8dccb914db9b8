//! `POST /jobs/{name}` (R14, §6.11): runs a scheduled job now. Master key only; answers 200 at once,
//! the run's outcome goes to the job's run history and the tenant's logs.

use super::TenantRequest;
use crate::error::{ApiError, Result};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_storage::scripts::ScriptKind;

/// Entry point for `/jobs/...`.
pub async fn dispatch(state: &crate::AppState, r: TenantRequest) -> Result<Response> {
    if r.segments.len() != 2 {
        return Err(ApiError::not_found());
    }
    let caller = super::authenticate(&r)?;
    if !caller.master {
        return Err(ApiError::unauthorized());
    }
    let script = r.tenant.script(ScriptKind::Job, &r.segments[1]).ok_or_else(ApiError::not_found)?;
    if r.method != Method::POST {
        return Err(ApiError::MethodNotAllowed("POST"));
    }
    let due = crate::scheduler::run_now(state, &r.tenant, &script).await?;
    let (app, tenant) = (state.clone(), r.tenant.clone());
    tokio::spawn(async move { crate::scheduler::run_job(&app, &tenant, &script, &due).await });
    Ok(StatusCode::OK.into_response())
}
