//! `/manage/v1`: the platform management API (accounts, tenants, keys, settings, tables, columns,
//! permissions, data, scripts, logs). Callers authenticate with a portal session (cookie; state
//! changes also need its CSRF token in `X-CSRF-Token`), a personal API token or the platform admin
//! token (`Authorization: Bearer`). [`access`] says what each route needs; [`authorize`] checks it
//! for every call. Handlers are thin: the work is in [`crate::manage`] and [`crate::accounts`],
//! shared with the CLI.

use crate::accounts::{self, Access, Principal};
use crate::auth;
use crate::manage::{self, ManageError};
use crate::{AppState, ExposeSecret};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use roost_api::{
    AccountIn, AccountOut, ApiTokenIn, ApiTokenOut, ColumnIn, ErrorOut, LogQuery, OwnerIn, PasswordIn, Role, SessionOut, SignInIn, TableIn, TablePermissions,
    TenantIn, TenantSettingsPatch,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::{session_store, Expiry, Session, SessionManagerLayer, SessionStore};

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        let status = match &self {
            ManageError::NotFound(_) => StatusCode::NOT_FOUND,
            ManageError::BadInput(_) => StatusCode::BAD_REQUEST,
            ManageError::Conflict(_) => StatusCode::CONFLICT,
            ManageError::Syntax { .. } => StatusCode::BAD_REQUEST,
            ManageError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ManageError::Forbidden(_) => StatusCode::FORBIDDEN,
            ManageError::TooManyAttempts(_) | ManageError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ManageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let error = if status == StatusCode::INTERNAL_SERVER_ERROR { "Internal Server Error".to_string() } else { self.to_string() };
        let (line, column) = match &self {
            ManageError::Syntax { line, column, .. } => (Some(*line), Some(*column)),
            _ => (None, None),
        };
        let mut r = (status, Json(ErrorOut { code: status.as_u16(), error, line, column })).into_response();
        if let ManageError::Internal(cause) = &self {
            // Logged once, with the request's span, by the trace layer (crate::telemetry).
            r.extensions_mut().insert(crate::telemetry::InternalCause(cause.clone()));
        }
        match &self {
            ManageError::Unauthorized(_) => {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            ManageError::TooManyAttempts(secs) => {
                r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*secs));
            }
            ManageError::Busy(_) => {
                r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(5u64));
            }
            _ => {}
        }
        r
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

/// What the route `path` (as matched, below `/manage/v1`) needs for `method`; `None`: no sign-in (sign-in itself).
pub fn access(method: &Method, path: &str) -> Option<Access> {
    Some(match path {
        "/session" if method == Method::POST => return None,
        "/session" | "/account/password" | "/account/tokens" | "/account/tokens/{id}" => Access::Signed,
        "/accounts" | "/accounts/{id}" => Access::Admin,
        "/tenants" if method == Method::GET => Access::Listing,
        "/tenants" => Access::CreateTenant,
        "/tiers" => Access::Signed,
        "/monitor" if method == Method::GET => Access::Watch,
        "/tenants/{tenant}/tier" => Access::Admin,
        // An archive holds the tenant's keys and every secret in the clear.
        "/tenants/{tenant}/backup" | "/restore" => Access::Admin,
        "/tenants/{tenant}/monitor"
        | "/tenants/{tenant}/dashboard"
        | "/tenants/{tenant}/usage"
        | "/tenants/{tenant}/logs"
        | "/tenants/{tenant}/logs/stream"
        | "/tenants/{tenant}/jobs/{job}/runs"
            if method == Method::GET =>
        {
            Access::Monitor
        }
        p if p.starts_with("/tenants/{tenant}") => Access::Tenant,
        _ => Access::Admin,
    })
}

const CSRF_KEY: &str = "csrf";
const ACCOUNT_KEY: &str = "account_id";

fn unauthorized() -> ManageError {
    ManageError::Unauthorized("Sign in, or send a personal API token or the platform admin token (Authorization: Bearer <token>).".into())
}

/// Who is calling: a bearer token (admin token or personal API token), else the portal session.
async fn principal(state: &AppState, authorization: Option<header::HeaderValue>, session: Option<Session>) -> Result<Option<Principal>, ManageError> {
    if let Some(value) = authorization {
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or_default();
        let admin = state.admin_token.expose_secret();
        if !admin.is_empty() && auth::secrets_equal(token, admin) {
            return Ok(Some(Principal { account: None, role: Role::Admin, via_session: false }));
        }
        if token.starts_with("roost_pat_") {
            if let Some(account) = accounts::account_by_token(&state.storage, token).await? {
                return Ok(Some(Principal { role: account.role, account: Some(account), via_session: false }));
            }
        }
        return Err(unauthorized());
    }
    let Some(session) = session else { return Ok(None) };
    let Some(id) = session.get::<String>(ACCOUNT_KEY).await.map_err(|e| ManageError::Internal(e.to_string()))? else { return Ok(None) };
    match state.storage.account(&id).await.map_err(|e| ManageError::Internal(e.to_string()))? {
        Some(r) => {
            let account = accounts::account_out(&r);
            Ok(Some(Principal { role: account.role, account: Some(account), via_session: true }))
        }
        // The account was deleted: its sessions end.
        None => {
            let _ = session.flush().await;
            Ok(None)
        }
    }
}

/// Checks every `/manage/v1` call: who is calling, their role and tenant, and the CSRF token of
/// session callers' state changes. The principal goes into the request's extensions.
async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match check(&state, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check(state: &AppState, req: &mut Request) -> Result<(), ManageError> {
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_default();
    let path = matched.strip_prefix("/manage/v1").unwrap_or(&matched).to_string();
    let Some(need) = access(req.method(), &path) else { return Ok(()) };
    let session = req.extensions().get::<Session>().cloned();
    let who = principal(state, req.headers().get(header::AUTHORIZATION).cloned(), session.clone()).await?.ok_or_else(unauthorized)?;
    // CSRF is checked on the effective method: `X-HTTP-Method-Override` (which the rows route's tenant
    // pipeline honours) counts as much as the request line.
    let overridden = req.headers().get("x-http-method-override").is_some();
    if who.via_session && (overridden || !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)) {
        let session = session.ok_or_else(unauthorized)?;
        let expected: Option<String> = session.get(CSRF_KEY).await.map_err(|e| ManageError::Internal(e.to_string()))?;
        let sent = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if !expected.is_some_and(|e| !sent.is_empty() && auth::secrets_equal(&sent, &e)) {
            return Err(ManageError::Forbidden("This call needs the session's CSRF token in the X-CSRF-Token header.".into()));
        }
    }
    // The tenant is the segment after `/tenants/` in routes under `/tenants/{tenant}`.
    let raw = req.uri().path().to_string();
    let tenant = path.starts_with("/tenants/{tenant}").then(|| {
        let raw = raw.strip_prefix("/manage/v1").unwrap_or(&raw);
        let seg = raw.trim_start_matches('/').split('/').nth(1).unwrap_or_default();
        percent_encoding::percent_decode_str(seg).decode_utf8_lossy().to_ascii_lowercase()
    });
    if !who.may(&state.storage, need, tenant.as_deref()).await? {
        return Err(ManageError::Forbidden(match (&tenant, who.role) {
            (Some(t), Role::Owner) if need != Access::Admin => format!("Your account does not own the tenant '{t}'."),
            _ => format!("The {} role may not do this.", who.role.as_str()),
        }));
    }
    req.extensions_mut().insert(who);
    Ok(())
}

/// The session layer of `/manage/v1`: tower-sessions records in the catalog, an HttpOnly
/// SameSite=Strict cookie, idle expiry.
pub fn session_layer(state: &AppState) -> SessionManagerLayer<CatalogSessionStore> {
    SessionManagerLayer::new(CatalogSessionStore(state.clone()))
        .with_name(super::SESSION_COOKIE)
        // Only `/manage/v1` ever receives the cookie: tenant endpoints (and the scripts behind them)
        // never see it, whatever a client sends them.
        .with_path("/manage/v1")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(state.secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(state.session_idle.as_secs() as i64)))
}

/// The management router (mounted at `/manage/v1`).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/session", post(sign_in).get(session_info).delete(sign_out))
        .route("/account/password", put(change_password))
        .route("/account/tokens", get(list_tokens).post(create_token))
        .route("/account/tokens/{id}", delete(delete_token))
        .route("/accounts", get(list_accounts).post(create_account))
        .route("/accounts/{id}", delete(delete_account))
        .route("/tenants", get(list_tenants).post(create_tenant))
        .route("/tenants/{tenant}", get(get_tenant).delete(delete_tenant))
        .route("/tenants/{tenant}/owners", get(list_owners).post(add_owner))
        .route("/tenants/{tenant}/owners/{id}", delete(remove_owner))
        .route("/tenants/{tenant}/monitor", get(get_monitor))
        .route("/tenants/{tenant}/settings", axum::routing::patch(update_settings))
        .route("/tenants/{tenant}/keys/{kind}/regenerate", post(regenerate_key))
        .route("/tenants/{tenant}/token", post(mint_token))
        .route("/tenants/{tenant}/tokens/revoke", post(revoke_tokens))
        .route("/tenants/{tenant}/tables", get(list_tables).post(create_table))
        .route("/tenants/{tenant}/tables/{table}", get(get_table).delete(drop_table))
        .route("/tenants/{tenant}/tables/{table}/permissions", put(set_permissions))
        .route("/tenants/{tenant}/tables/{table}/columns", post(add_column))
        .route("/tenants/{tenant}/tables/{table}/columns/{column}", delete(drop_column))
        .route("/tenants/{tenant}/tables/{table}/rows", get(rows).post(rows))
        .route("/tenants/{tenant}/tables/{table}/rows/{id}", get(rows).patch(rows).delete(rows))
        .route("/tenants/{tenant}/scripts", get(list_scripts))
        .route("/tenants/{tenant}/scripts/{kind}/{name}", get(get_script).put(put_script).delete(delete_script))
        .route("/tenants/{tenant}/packages", get(get_packages).put(put_packages))
        .route("/tenants/{tenant}/push", get(push_show))
        .route("/tenants/{tenant}/push/vapid/rotate", post(push_rotate))
        .route("/tenants/{tenant}/push/fcm", put(push_put_fcm).delete(push_delete_fcm))
        .route("/tenants/{tenant}/push/apns", put(push_put_apns).delete(push_delete_apns))
        .route("/tenants/{tenant}/push/registrations", get(push_registrations))
        .route("/tenants/{tenant}/push/registrations/{id}", delete(push_delete_registration))
        .route("/tenants/{tenant}/push/sends", get(push_sends))
        .route("/tenants/{tenant}/push/sends/{id}", get(push_send))
        .route("/tenants/{tenant}/push/test", post(push_test))
        .route("/tenants/{tenant}/identity/providers", get(list_providers))
        .route("/tenants/{tenant}/identity/providers/{name}", get(get_provider).put(put_provider).delete(delete_provider))
        .route("/tenants/{tenant}/logs", get(get_logs))
        .route("/tenants/{tenant}/logs/stream", get(super::monitor::log_stream))
        .route("/tenants/{tenant}/dashboard", get(super::monitor::dashboard))
        .route("/tenants/{tenant}/usage", get(super::monitor::usage))
        .route("/tenants/{tenant}/tier", put(super::monitor::put_tier))
        .route("/tenants/{tenant}/backup", get(super::backup::download))
        .route("/restore", post(super::backup::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/tiers", get(super::monitor::tiers))
        .route("/monitor", get(super::monitor::platform))
        .route("/tenants/{tenant}/jobs/{job}/runs", get(get_job_runs))
        .route("/tenants/{tenant}/jobs/{job}/run", post(run_job_now))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .fallback(|| async { ManageError::NotFound("This route".into()) })
        .layer(session_layer(&state))
}

/// tower-sessions records in the catalog, keyed by the SHA-256 of the session id.
#[derive(Clone)]
pub struct CatalogSessionStore(AppState);

impl std::fmt::Debug for CatalogSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogSessionStore")
    }
}

fn store_error(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait::async_trait]
impl SessionStore for CatalogSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(store_error)?;
        // A colliding id (never seen in practice: 128 random bits) gets a fresh one.
        while !self
            .0
            .storage
            .create_session(&accounts::secret_hash(&record.id.to_string()), &data, record.expiry_date.unix_timestamp())
            .await
            .map_err(store_error)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(store_error)?;
        self.0.storage.save_session(&accounts::secret_hash(&record.id.to_string()), &data, record.expiry_date.unix_timestamp()).await.map_err(store_error)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Some(data) = self.0.storage.load_session(&accounts::secret_hash(&id.to_string()), now).await.map_err(store_error)? else { return Ok(None) };
        let data = serde_json::from_str(&data).map_err(store_error)?;
        // The expiry is renewed by the layer on every request (idle expiry); this value is replaced.
        Ok(Some(Record { id: *id, data, expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(1) }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.storage.delete_session(&accounts::secret_hash(&id.to_string())).await.map_err(store_error)
    }
}

fn client_address(addr: Option<&Extension<ConnectInfo<SocketAddr>>>) -> String {
    addr.map(|c| c.0 .0.ip().to_string()).unwrap_or_default()
}

/// `POST /session`: signs in (rate limited per e-mail and per client address).
async fn sign_in(
    State(s): State<AppState>,
    session: Session,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    AppJson(body): AppJson<SignInIn>,
) -> R<Json<SessionOut>> {
    let address = client_address(addr.as_ref());
    if let Some(wait) = accounts::SignInLimiter::blocked(&s.storage, &body.email, &address).await? {
        tracing::warn!(account.email = %body.email, client.address = %address, "Sign-in refused: too many failures");
        return Err(ManageError::TooManyAttempts(wait));
    }
    let Some(account) = accounts::authenticate(&s.storage, &body.email, &body.password).await? else {
        accounts::SignInLimiter::failed(&s.storage, &body.email, &address).await?;
        tracing::warn!(account.email = %body.email, client.address = %address, "Failed sign-in");
        return Err(ManageError::Unauthorized("The e-mail or password is wrong.".into()));
    };
    accounts::SignInLimiter::succeeded(&s.storage, &body.email).await?;
    // A fresh session id at sign-in (no fixation), with its own CSRF token.
    session.cycle_id().await.map_err(|e| ManageError::Internal(e.to_string()))?;
    let csrf = auth::generate_key();
    session.insert(ACCOUNT_KEY, &account.id).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    session.insert(CSRF_KEY, &csrf).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    tracing::info!(account.email = %account.email, "Signed in");
    Ok(Json(SessionOut { account, csrf_token: Some(csrf) }))
}

/// `GET /session`: who is calling (and, for a session, its CSRF token).
async fn session_info(Extension(who): Extension<Principal>, session: Session) -> R<Json<SessionOut>> {
    let csrf = if who.via_session { session.get::<String>(CSRF_KEY).await.map_err(|e| ManageError::Internal(e.to_string()))? } else { None };
    let account =
        who.account.unwrap_or_else(|| AccountOut { id: String::new(), email: "platform admin token".into(), role: Role::Admin, created_at: String::new() });
    Ok(Json(SessionOut { account, csrf_token: csrf }))
}

/// `DELETE /session`: signs out.
async fn sign_out(session: Session) -> R<StatusCode> {
    session.flush().await.map_err(|e| ManageError::Internal(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

fn own_account(who: &Principal) -> R<&AccountOut> {
    who.account.as_ref().ok_or_else(|| ManageError::BadInput("The platform admin token has no account; sign in with an account for this.".into()))
}

async fn change_password(State(s): State<AppState>, Extension(who): Extension<Principal>, AppJson(p): AppJson<PasswordIn>) -> R<StatusCode> {
    accounts::change_password(&s.storage, &own_account(&who)?.id, &p.current_password, &p.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(State(s): State<AppState>, Extension(who): Extension<Principal>) -> R<Json<Vec<ApiTokenOut>>> {
    Ok(Json(accounts::list_tokens(&s.storage, &own_account(&who)?.id).await?))
}

async fn create_token(State(s): State<AppState>, Extension(who): Extension<Principal>, AppJson(t): AppJson<ApiTokenIn>) -> R<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(accounts::create_token(&s.storage, &own_account(&who)?.id, &t.name).await?)))
}

async fn delete_token(State(s): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>) -> R<StatusCode> {
    accounts::delete_token(&s.storage, &own_account(&who)?.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_accounts(State(s): State<AppState>) -> R<Json<Vec<AccountOut>>> {
    Ok(Json(accounts::list_accounts(&s.storage).await?))
}

async fn create_account(State(s): State<AppState>, AppJson(a): AppJson<AccountIn>) -> R<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(accounts::create_account(&s.storage, &a.email, &a.password, a.role).await?)))
}

async fn delete_account(State(s): State<AppState>, Path(id): Path<String>) -> R<StatusCode> {
    accounts::delete_account(&s.storage, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_owners(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<Vec<AccountOut>>> {
    manage::show_tenant(&s.storage, &tenant).await?;
    let owners = s.storage.tenant_owners(&tenant).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    Ok(Json(owners.iter().map(accounts::account_out).collect()))
}

async fn add_owner(State(s): State<AppState>, Path(tenant): Path<String>, AppJson(o): AppJson<OwnerIn>) -> R<Json<Vec<AccountOut>>> {
    manage::show_tenant(&s.storage, &tenant).await?;
    let account = s.storage.account_by_email(&o.email).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    let account = account.ok_or_else(|| ManageError::NotFound(format!("An account with e-mail '{}'", o.email)))?;
    if account.role != Role::Owner {
        return Err(ManageError::BadInput(format!("'{}' has the {} role; only owner accounts own tenants.", account.email, account.role)));
    }
    s.storage.add_tenant_owner(&tenant, &account.id).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    list_owners(State(s), Path(tenant)).await
}

async fn remove_owner(State(s): State<AppState>, Path((tenant, id)): Path<(String, String)>) -> R<StatusCode> {
    s.storage.remove_tenant_owner(&tenant, &id).await.map_err(|e| ManageError::from_storage(e, || format!("Owner '{id}' of '{tenant}'")))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_monitor(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<roost_api::MonitorOut>> {
    Ok(Json(manage::monitor(&s.storage, &tenant).await?))
}

/// `/tenants/{t}/tables/{table}/rows[/{id}]`: the portal's data browser. The request goes through
/// the tenant endpoint's own pipeline (validation, conversions, system properties, OData) with the
/// master key and `noScript`, so it answers exactly what `/t/{t}/tables/{table}` would.
async fn rows(State(s): State<AppState>, Path(params): Path<Vec<(String, String)>>, req: Request) -> R<Response> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (tenant, table) = (get("tenant").unwrap_or_default(), get("table").unwrap_or_default());
    let record = manage::show_tenant(&s.storage, &tenant).await?;
    let enc = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut rest = format!("/tables/{}", enc(&table));
    if let Some(id) = get("id") {
        rest += &format!("/{}", enc(&id));
    }
    let (mut parts, body) = req.into_parts();
    // A read carries no body: a `_method` member in one would otherwise turn a GET (no CSRF token
    // needed) into a write in the tenant pipeline.
    let body = if matches!(parts.method, Method::GET | Method::HEAD) { axum::body::Body::empty() } else { body };
    let query = parts.uri.query().map(|q| format!("{q}&noScript=true")).unwrap_or_else(|| "noScript=true".into());
    parts.uri = format!("/t/{}{rest}?{query}", enc(&record.name)).parse().map_err(|e| ManageError::BadInput(format!("Invalid path: {e}")))?;
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.remove(header::COOKIE);
    parts.headers.remove("x-zumo-auth");
    parts.headers.remove("x-zumo-application");
    parts.headers.insert("x-zumo-master", header::HeaderValue::from_str(&record.master_key).map_err(|e| ManageError::Internal(e.to_string()))?);
    let surface = super::tenant_routes(s.clone());
    let base = super::Base::Path(enc(&record.name));
    Ok(super::tenant_request(&s, &surface, record.name, base, rest, Request::from_parts(parts, body)).await)
}

async fn list_tenants(State(s): State<AppState>, Extension(who): Extension<Principal>) -> R<Json<Vec<roost_api::TenantSummary>>> {
    let only = match (&who.role, &who.account) {
        (Role::Owner, Some(a)) => Some(s.storage.owned_tenants(&a.id).await.map_err(|e| ManageError::Internal(e.to_string()))?),
        _ => None,
    };
    Ok(Json(manage::tenant_summaries(&s.storage, only.as_deref()).await?))
}

/// Who a principal is when it changes settings.
fn settings_by(who: &Principal) -> manage::SettingsBy {
    if who.role == Role::Admin {
        manage::SettingsBy::Admin
    } else {
        manage::SettingsBy::Owner
    }
}

async fn create_tenant(State(s): State<AppState>, Extension(who): Extension<Principal>, AppJson(t): AppJson<TenantIn>) -> R<impl IntoResponse> {
    let out = manage::create_tenant(&s.storage, &s.maxima, settings_by(&who), &t.name, t.settings).await?;
    // The account that created a tenant owns it.
    if let (Role::Owner, Some(a)) = (who.role, &who.account) {
        s.storage.add_tenant_owner(&out.name, &a.id).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    }
    Ok((StatusCode::CREATED, Json(out)))
}

async fn get_tenant(State(s): State<AppState>, Path(tenant): Path<String>) -> R<impl IntoResponse> {
    Ok(Json(manage::show_tenant(&s.storage, &tenant).await?))
}

async fn delete_tenant(State(s): State<AppState>, Path(tenant): Path<String>) -> R<impl IntoResponse> {
    manage::delete_tenant(&s.storage, &tenant).await?;
    s.metrics.forget(&tenant.to_ascii_lowercase());
    Ok(StatusCode::NO_CONTENT)
}

async fn update_settings(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(tenant): Path<String>,
    AppJson(p): AppJson<TenantSettingsPatch>,
) -> R<impl IntoResponse> {
    // The ceilings are the platform's lowered by the tenant's tier: an owner cannot raise them.
    let max = match s.storage.tenant(&tenant).await {
        Ok(Some(t)) => s.maxima_for(&t.record),
        _ => s.maxima,
    };
    Ok(Json(manage::update_settings(&s.storage, &max, settings_by(&who), &tenant, &p).await?))
}

async fn regenerate_key(State(s): State<AppState>, Path((tenant, kind)): Path<(String, String)>) -> R<impl IntoResponse> {
    let kind = roost_api::KeyKind::parse(&kind).ok_or_else(|| ManageError::BadInput(format!("'{kind}' is not a key kind (application, master).")))?;
    Ok(Json(manage::regenerate_key(&s.storage, &tenant, kind).await?))
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
    Ok((StatusCode::CREATED, Json(manage::create_table(&s.storage, &s.tiers, &tenant, &t).await?)))
}

async fn get_table(State(s): State<AppState>, Path((tenant, table)): Path<(String, String)>) -> R<impl IntoResponse> {
    Ok(Json(manage::show_table(&s.storage, &tenant, &table).await?))
}

async fn drop_table(State(s): State<AppState>, Path((tenant, table)): Path<(String, String)>) -> R<impl IntoResponse> {
    manage::drop_table(&s.storage, &tenant, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_permissions(
    State(s): State<AppState>,
    Path((tenant, table)): Path<(String, String)>,
    AppJson(p): AppJson<TablePermissions>,
) -> R<impl IntoResponse> {
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

async fn put_script(
    State(s): State<AppState>,
    Path((tenant, kind, name)): Path<(String, String, String)>,
    AppJson(body): AppJson<roost_api::ScriptIn>,
) -> R<Json<roost_api::ScriptOut>> {
    Ok(Json(manage::put_script(&s.storage, &tenant, &kind, &name, &body).await?))
}

async fn delete_script(State(s): State<AppState>, Path((tenant, kind, name)): Path<(String, String, String)>) -> R<StatusCode> {
    manage::delete_script(&s.storage, &tenant, &kind, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_logs(State(s): State<AppState>, Path(tenant): Path<String>, q: Result<Query<LogQuery>, QueryRejection>) -> R<Json<Vec<roost_api::LogOut>>> {
    let Query(q) = q.map_err(|e| ManageError::BadInput(e.body_text()))?;
    Ok(Json(manage::logs(&s.storage, &tenant, &q).await?))
}

async fn get_job_runs(
    State(s): State<AppState>,
    Path((tenant, job)): Path<(String, String)>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> R<Json<Vec<roost_api::JobRunOut>>> {
    let Query(q) = q.map_err(|e| ManageError::BadInput(e.body_text()))?;
    Ok(Json(manage::job_runs(&s.storage, &tenant, &job, q.limit.unwrap_or(100)).await?))
}

/// `POST /tenants/{t}/jobs/{job}/run`: runs a job now (as `POST /t/{t}/jobs/{job}` with the master
/// key); answers 202 at once, the outcome goes to the job's runs and the tenant's logs.
async fn run_job_now(State(s): State<AppState>, Path((tenant, job)): Path<(String, String)>) -> R<StatusCode> {
    let t = s
        .storage
        .tenant(&tenant)
        .await
        .map_err(|e| ManageError::Internal(e.to_string()))?
        .ok_or_else(|| ManageError::NotFound(format!("Tenant '{tenant}'")))?;
    let script = t.script(roost_storage::scripts::ScriptKind::Job, &job).ok_or_else(|| ManageError::NotFound(format!("Job '{job}'")))?;
    let due = crate::scheduler::run_now(&s, &t, &script).await.map_err(|e| ManageError::Internal(e.to_string()))?;
    crate::scheduler::spawn_run(&s, t, script, due);
    Ok(StatusCode::ACCEPTED)
}

/// `GET /tenants/{t}/packages`: the tenant's package.json and what its lock resolved.
async fn get_packages(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<roost_api::PackagesOut>> {
    Ok(Json(manage::packages(&s.storage, &tenant).await?))
}

/// `PUT /tenants/{t}/packages` with a package.json: installs it (adding the bundled packages the
/// scripts require), then switches every node to it; on failure the previous packages stay.
async fn put_packages(State(s): State<AppState>, Path(tenant): Path<String>, AppJson(manifest): AppJson<serde_json::Value>) -> R<Json<roost_api::PackagesOut>> {
    Ok(Json(manage::set_packages(&s.storage, &tenant, &manifest.to_string()).await?))
}

/// `GET /tenants/{t}/identity/providers`: the tenant's identity providers (secrets never shown).
async fn list_providers(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<Vec<roost_api::ProviderOut>>> {
    Ok(Json(crate::identity::list(&s, &tenant).await?))
}

/// `GET /tenants/{t}/identity/providers/{name}`.
async fn get_provider(State(s): State<AppState>, Path((tenant, name)): Path<(String, String)>) -> R<Json<roost_api::ProviderOut>> {
    let all = crate::identity::list(&s, &tenant).await?;
    all.into_iter().find(|p| p.name.eq_ignore_ascii_case(&name)).map(Json).ok_or_else(|| ManageError::NotFound(format!("Identity provider '{name}'")))
}

/// `PUT /tenants/{t}/identity/providers/{name}`: creates or replaces a provider (a change without
/// `client_secret` keeps the stored one).
async fn put_provider(
    State(s): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    AppJson(input): AppJson<roost_api::ProviderIn>,
) -> R<Json<roost_api::ProviderOut>> {
    Ok(Json(crate::identity::put(&s, &tenant, &name, input).await?))
}

/// `DELETE /tenants/{t}/identity/providers/{name}`.
async fn delete_provider(State(s): State<AppState>, Path((tenant, name)): Path<(String, String)>) -> R<StatusCode> {
    crate::identity::remove(&s, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /tenants/{t}/push`: the Web Push public key, FCM and APNs credentials (never a key) and
/// the number of registrations.
async fn push_show(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<roost_api::PushOut>> {
    Ok(Json(crate::push::admin::show(&s, &tenant).await?))
}

/// `POST /tenants/{t}/push/vapid/rotate`: a new Web Push key pair.
async fn push_rotate(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<roost_api::PushOut>> {
    Ok(Json(crate::push::admin::rotate_vapid(&s, &tenant).await?))
}

/// `PUT /tenants/{t}/push/fcm`: FCM HTTP v1 credentials (a service account's key file).
async fn push_put_fcm(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    AppJson(input): AppJson<roost_api::FcmCredentialsIn>,
) -> R<Json<roost_api::FcmCredentialsOut>> {
    Ok(Json(crate::push::native::put_fcm(&s, &tenant, input).await?))
}

/// `DELETE /tenants/{t}/push/fcm`.
async fn push_delete_fcm(State(s): State<AppState>, Path(tenant): Path<String>) -> R<StatusCode> {
    crate::push::native::remove(&s, &tenant, "fcm").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /tenants/{t}/push/apns`: APNs token authentication (a change without `key` keeps the stored one).
async fn push_put_apns(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    AppJson(input): AppJson<roost_api::ApnsCredentialsIn>,
) -> R<Json<roost_api::ApnsCredentialsOut>> {
    Ok(Json(crate::push::native::put_apns(&s, &tenant, input).await?))
}

/// `DELETE /tenants/{t}/push/apns`.
async fn push_delete_apns(State(s): State<AppState>, Path(tenant): Path<String>) -> R<StatusCode> {
    crate::push::native::remove(&s, &tenant, "apns").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of `GET /tenants/{t}/push/registrations`.
#[derive(Deserialize)]
struct RegistrationFilter {
    platform: Option<String>,
    tag: Option<String>,
    user: Option<String>,
}

/// `GET /tenants/{t}/push/registrations?platform&tag&user`: newest first, at most 500.
async fn push_registrations(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<RegistrationFilter>, QueryRejection>,
) -> R<Json<Vec<roost_api::RegistrationOut>>> {
    let Query(f) = q.map_err(|e| ManageError::BadInput(e.body_text()))?;
    let nonempty = |o: Option<String>| o.filter(|v| !v.is_empty());
    let (platform, tag, user) = (nonempty(f.platform), nonempty(f.tag), nonempty(f.user));
    Ok(Json(crate::push::admin::registrations(&s, &tenant, platform.as_deref(), tag.as_deref(), user.as_deref()).await?))
}

/// `DELETE /tenants/{t}/push/registrations/{id}`.
async fn push_delete_registration(State(s): State<AppState>, Path((tenant, id)): Path<(String, String)>) -> R<StatusCode> {
    crate::push::admin::delete_registration(&s, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?limit` of `GET /tenants/{t}/push/sends`.
#[derive(Deserialize)]
struct SendsQuery {
    limit: Option<i64>,
}

/// `GET /tenants/{t}/push/sends?limit`: recent sends with their counts, newest first.
async fn push_sends(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<SendsQuery>, QueryRejection>,
) -> R<Json<Vec<roost_api::PushSendOut>>> {
    let Query(q) = q.map_err(|e| ManageError::BadInput(e.body_text()))?;
    Ok(Json(crate::push::admin::sends(&s, &tenant, q.limit.unwrap_or(50)).await?))
}

/// `GET /tenants/{t}/push/sends/{id}`: one send's status.
async fn push_send(State(s): State<AppState>, Path((tenant, id)): Path<(String, String)>) -> R<Json<roost_api::PushSendOut>> {
    Ok(Json(crate::push::admin::send_status(&s, &tenant, &id).await?))
}

/// `POST /tenants/{t}/push/test`: a test notification; answers the send (poll it for its status).
async fn push_test(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    AppJson(input): AppJson<roost_api::PushTestIn>,
) -> R<(StatusCode, Json<roost_api::PushSendOut>)> {
    Ok((StatusCode::ACCEPTED, Json(crate::push::admin::test(&s, &tenant, input).await?)))
}

/// `POST /tenants/{t}/tokens/revoke`: every user token of the tenant stops working (the keys stay).
async fn revoke_tokens(State(s): State<AppState>, Path(tenant): Path<String>) -> R<Json<roost_api::RevokedOut>> {
    Ok(Json(manage::revoke_tokens(&s.storage, &tenant).await?))
}
