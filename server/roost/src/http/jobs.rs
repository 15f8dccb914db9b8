//! `POST /jobs/{name}` (R14, §6.11): runs a scheduled job now. Master key only; answers 200 at once,
//! the run's outcome goes to the job's run history and the tenant's logs.

use super::extract::{Master, TenantCall};
use crate::error::{ApiError, Result};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_storage::scripts::ScriptKind;

/// `/jobs/{name}`: the master key first (401), then the job (404), then the method (405).
pub async fn run_job(State(state): State<AppState>, _: Master, r: TenantCall, Path((_tenant, name)): Path<(String, String)>) -> Result<Response> {
    let script = r.tenant.script(ScriptKind::Job, &name).ok_or_else(ApiError::not_found)?;
    if r.method != Method::POST {
        return Err(ApiError::MethodNotAllowed("POST"));
    }
    let due = crate::scheduler::run_now(&state, &r.tenant, &script).await?;
    crate::scheduler::spawn_run(&state, r.tenant.clone(), script, due);
    Ok(StatusCode::OK.into_response())
}
