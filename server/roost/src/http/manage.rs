//! `/manage/v1`: the platform management API (tenants, keys, settings, tables, columns, permissions),
//! authenticated with the platform admin token as a bearer token. Handlers are thin: the work is in
//! [`crate::manage`], shared with the CLI.

use crate::auth;
use crate::manage::{self, ManageError};
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use roost_api::{ColumnIn, ErrorOut, TableIn, TablePermissions, TenantIn, TenantSettingsPatch};
use serde::{Deserialize, Serialize};

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        let status = match &self {
            ManageError::NotFound(_) => StatusCode::NOT_FOUND,
            ManageError::BadInput(_) => StatusCode::BAD_REQUEST,
            ManageError::Conflict(_) => StatusCode::CONFLICT,
            ManageError::Syntax { .. } => StatusCode::BAD_REQUEST,
            ManageError::Internal(cause) => {
                tracing::error!(error.cause = %cause, "Management request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let error = if status == StatusCode::INTERNAL_SERVER_ERROR { "Internal Server Error".to_string() } else { self.to_string() };
        let (line, column) = match &self {
            ManageError::Syntax { line, column, .. } => (Some(*line), Some(*column)),
            _ => (None, None),
        };
        (status, Json(ErrorOut { code: status.as_u16(), error, line, column })).into_response()
    }
}

/// JSON input whose rejection is a management error body, not axum's plain text.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ManageError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(AppJson(v)),
            Err(e) => Err(ManageError::BadInput(match e {
                JsonRejection::JsonDataError(e) => format!("Invalid request body: {}", e.body_text()),
                other => other.body_text(),
            })),
        }
    }
}

type R<T> = Result<T, ManageError>;

async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| auth::secrets_equal(t.trim(), &state.admin_token));
    if !ok {
        let body = ErrorOut { code: 401, error: "A valid platform admin token is required (Authorization: Bearer <token>).".into(), line: None, column: None };
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response();
    }
    next.run(req).await
}

/// The management router (mounted at `/manage/v1`).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/tenants/{tenant}", get(get_tenant).delete(delete_tenant))
        .route("/tenants/{tenant}/settings", axum::routing::patch(update_settings))
        .route("/tenants/{tenant}/keys/{kind}/regenerate", post(regenerate_key))
        .route("/tenants/{tenant}/token", post(mint_token))
        .route("/tenants/{tenant}/tables", get(list_tables).post(create_table))
        .route("/tenants/{tenant}/tables/{table}", get(get_table).delete(drop_table))
        .route("/tenants/{tenant}/tables/{table}/permissions", put(set_permissions))
        .route("/tenants/{tenant}/tables/{table}/columns", post(add_column))
        .route("/tenants/{tenant}/tables/{table}/columns/{column}", delete(drop_column))
        .route("/tenants/{tenant}/scripts", get(list_scripts))
        .route("/tenants/{tenant}/scripts/{kind}/{name}", get(get_script).put(put_script).delete(delete_script))
        .route("/tenants/{tenant}/logs", get(get_logs))
        .route("/tenants/{tenant}/jobs/{job}/runs", get(get_job_runs))
        .fallback(|| async { ManageError::NotFound("This route".into()) })
        .layer(middleware::from_fn_with_state(state, require_admin))
}

async fn list_tenants(State(s): State<AppState>) -> R<impl IntoResponse> {
    Ok(Json(manage::list_tenants(&s.storage).await?))
}

async fn create_tenant(State(s): State<AppState>, AppJson(t): AppJson<TenantIn>) -> R<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(manage::create_tenant(&s.storage, &t.name, t.settings).await?)))
}

async fn get_tenant(State(s): State<AppState>, Path(tenant): Path<String>) -> R<impl IntoResponse> {
    Ok(Json(manage::show_tenant(&s.storage, &tenant).await?))
}

async fn delete_tenant(State(s): State<AppState>, Path(tenant): Path<String>) -> R<impl IntoResponse> {
    manage::delete_tenant(&s.storage, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_settings(State(s): State<AppState>, Path(tenant): Path<String>, AppJson(p): AppJson<TenantSettingsPatch>) -> R<impl IntoResponse> {
    Ok(Json(manage::update_settings(&s.storage, &tenant, &p).await?))
}

async fn regenerate_key(State(s): State<AppState>, Path((tenant, kind)): Path<(String, String)>) -> R<impl IntoResponse> {
    Ok(Json(manage::regenerate_key(&s.storage, &tenant, &kind).await?))
}

/// `POST /tenants/{t}/token`.
#[derive(Debug, Deserialize)]
struct TokenIn {
    user_id: String,
    #[serde(default = "default_ttl")]
    ttl_seconds: i64,
}

fn default_ttl() -> i64 {
    30 * 24 * 3600
}

#[derive(Debug, Serialize)]
struct TokenOut {
    token: String,
}

async fn mint_token(State(s): State<AppState>, Path(tenant): Path<String>, AppJson(t): AppJson<TokenIn>) -> R<impl IntoResponse> {
    Ok(Json(TokenOut { token: manage::mint_token(&s.storage, &tenant, &t.user_id, t.ttl_seconds).await? }))
}

async fn list_tables(State(s): State<AppState>, Path(tenant): Path<String>) -> R<impl IntoResponse> {
    Ok(Json(manage::list_tables(&s.storage, &tenant).await?))
}

async fn create_table(State(s): State<AppState>, Path(tenant): Path<String>, AppJson(t): AppJson<TableIn>) -> R<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(manage::create_table(&s.storage, &tenant, &t).await?)))
}

async fn get_table(State(s): State<AppState>, Path((tenant, table)): Path<(String, String)>) -> R<impl IntoResponse> {
    Ok(Json(manage::show_table(&s.storage, &tenant, &table).await?))
}

async fn drop_table(State(s): State<AppState>, Path((tenant, table)): Path<(String, String)>) -> R<impl IntoResponse> {
    manage::drop_table(&s.storage, &tenant, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_permissions(State(s): State<AppState>, Path((tenant, table)): Path<(String, String)>, AppJson(p): AppJson<TablePermissions>) -> R<impl IntoResponse> {
    Ok(Json(manage::set_permissions(&s.storage, &tenant, &table, &p).await?))
}

async fn add_column(State(s): State<AppState>, Path((tenant, table)): Path<(String, String)>, AppJson(c): AppJson<ColumnIn>) -> R<impl IntoResponse> {
    Ok(Json(manage::add_column(&s.storage, &tenant, &table, &c).await?))
}

async fn drop_column(State(s): State<AppState>, Path((tenant, table, column)): Path<(String, String, String)>) -> R<impl IntoResponse> {
    Ok(Json(manage::drop_column(&s.storage, &tenant, &table, &column).await?))
}

async fn list_scripts(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<Vec<roost_api::ScriptOut>>> {
    Ok(Json(manage::list_scripts(&s.storage, &tenant).await?))
}

async fn get_script(State(s): State<AppState>, Path((tenant, kind, name)): Path<(String, String, String)>) -> R<Json<roost_api::ScriptOut>> {
    Ok(Json(manage::get_script(&s.storage, &tenant, &kind, &name).await?))
}

async fn put_script(State(s): State<AppState>, Path((tenant, kind, name)): Path<(String, String, String)>, AppJson(body): AppJson<roost_api::ScriptIn>) -> R<Json<roost_api::ScriptOut>> {
    Ok(Json(manage::put_script(&s.storage, &tenant, &kind, &name, &body).await?))
}

async fn delete_script(State(s): State<AppState>, Path((tenant, kind, name)): Path<(String, String, String)>) -> R<StatusCode> {
    manage::delete_script(&s.storage, &tenant, &kind, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?after=<id>&limit=<n>` paging of `/logs`.
#[derive(Debug, Deserialize)]
struct LogQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn get_logs(State(s): State<AppState>, Path(tenant): Path<String>, axum::extract::Query(q): axum::extract::Query<LogQuery>) -> R<Json<Vec<roost_api::LogOut>>> {
    Ok(Json(manage::logs(&s.storage, &tenant, q.after, q.limit).await?))
}

async fn get_job_runs(State(s): State<AppState>, Path((tenant, job)): Path<(String, String)>, axum::extract::Query(q): axum::extract::Query<LogQuery>) -> R<Json<Vec<roost_api::JobRunOut>>> {
    Ok(Json(manage::job_runs(&s.storage, &tenant, &job, q.limit).await?))
}
