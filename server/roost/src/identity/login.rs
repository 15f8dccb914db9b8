//! `/login/{provider}` (protocol.md §5.5) for OpenID Connect providers (and Facebook, whose OAuth 2.0
//! and Graph calls are in [`super::facebook`]): the server-directed flow
//! (authorization code with PKCE, `state` and `nonce` in `wams_*` cookies, the id token verified,
//! then every completion: `/login/done#token=`, the `postMessage` and `iframe` pages) and the
//! client-directed one (`POST` with the provider's `id_token`, or an `access_token` for its userinfo
//! endpoint). Both answer the token of §5.3 for `uid = "<prefix>:<sub>"`, never linking identities
//! by e-mail.
//!
//! Every request to a provider (discovery, keys, token, userinfo) goes through [`fetch`]: the
//! address rules of tenants' outbound requests (no loopback or private address unless the tenant's
//! admin-set `outbound_allow` names the host), no redirects, 10 s, at most 256 KiB. Discovery documents
//! and keys are cached per provider for an hour; an id token signed with a key id the cache does not
//! know refreshes the keys, at most once per 30 s per provider (key rotation).

use super::{IdentityKey, ProviderConfig};
use crate::error::{msg, ApiError, Result};
use crate::http::extract::TenantCall;
use crate::http::TenantRequest;
use crate::AppState;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use roost_api::ProviderKind;
use roost_storage::identity::ProviderRecord;
use roost_storage::Tenant;
use secrecy::ExposeSecret as _;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a discovery document and its keys are used before they are fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// A GUID in its usual form (an Entra tenant id).
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.bytes().enumerate().all(|(i, b)| if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// The placeholder of Entra's multi-tenant issuer.
const TENANT_ID: &str = "{tenantid}";
/// Discovery documents cached at most (each up to [`MAX_PROVIDER_BODY`]).
const MAX_DISCOVERY_ENTRIES: usize = 500;
/// The least time between two key refreshes of one provider for unknown key ids.
const KEY_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The largest answer read from a provider.
const MAX_PROVIDER_BODY: usize = 256 << 10;
/// How long the browser may take at the provider.
const FLOW_COOKIE_SECONDS: u32 = 600;
/// Signature algorithms accepted on id tokens: asymmetric only (an HS256 token "signed" with the
/// provider's public key is the algorithm-confusion attack).
const ALGS: [CoreJwsSigningAlgorithm; 6] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];

/// Discovery documents (with their keys), one per tenant provider, for the provider's version.
#[derive(Default)]
pub struct DiscoveryCache {
    entries: Mutex<HashMap<String, Arc<Discovered>>>,
}

struct Discovered {
    /// The provider's version (its row's `updated_at`) the document was fetched for.
    version: String,
    metadata: CoreProviderMetadata,
    fetched: Instant,
    /// When the keys were last fetched again for an unknown key id.
    keys_refreshed: Option<Instant>,
}

/// A failed request to a provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

/// One request to a tenant's provider, under the tenant's outbound address rules.
pub(super) async fn fetch(tenant: &Tenant, req: openidconnect::HttpRequest) -> std::result::Result<openidconnect::HttpResponse, FetchError> {
    let fail = |m: String| FetchError(m);
    let url = reqwest::Url::parse(&req.uri().to_string()).map_err(|e| fail(format!("invalid provider URL: {e}")))?;
    let host = url.host_str().ok_or_else(|| fail("a provider URL without a host".into()))?.trim_matches(|c| c == '[' || c == ']').to_string();
    match url.scheme() {
        "https" => {}
        "http" if super::is_loopback_host(&host) => {}
        other => return Err(fail(format!("provider URLs must be https (http only on loopback): {other}://{host}"))),
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addr = crate::outbound::checked_address(tenant, &host, port).await.map_err(fail)?;
    let client = reqwest::Client::builder()
        .resolve(&host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut rb = client.request(req.method().clone(), url);
    for (k, v) in req.headers() {
        rb = rb.header(k, v);
    }
    let mut resp = rb.body(req.into_body()).send().await.map_err(|e| fail(format!("the provider did not answer: {e}")))?;
    let mut out = axum::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        if body.len() + chunk.len() > MAX_PROVIDER_BODY {
            return Err(fail("the provider's answer is larger than 256 KiB".into()));
        }
        body.extend_from_slice(&chunk);
    }
    out.body(body).map_err(|e| fail(e.to_string()))
}

/// The HTTP client `openidconnect` calls, bound to a tenant.
fn http_client(
    tenant: &Arc<Tenant>,
) -> impl Fn(openidconnect::HttpRequest) -> futures::future::BoxFuture<'static, std::result::Result<openidconnect::HttpResponse, FetchError>> {
    let tenant = tenant.clone();
    move |req| {
        let tenant = tenant.clone();
        Box::pin(async move { fetch(&tenant, req).await })
    }
}

/// A configured OpenID Connect provider, ready to use.
struct Oidc {
    record: Arc<ProviderRecord>,
    config: ProviderConfig,
    kind: ProviderKind,
    secret: Option<String>,
}

fn issuer_of(discovery_url: &str) -> Option<String> {
    discovery_url.strip_suffix("/.well-known/openid-configuration").map(str::to_string)
}

impl Oidc {
    fn find(key: &IdentityKey, tenant: &Tenant, name: &str) -> Result<Self> {
        let record = tenant.provider(name).ok_or_else(|| {
            let known = ProviderKind::parse(&name.to_ascii_lowercase()).is_some() || name.eq_ignore_ascii_case("twitter");
            ApiError::Unauthorized(if known { msg::login_not_enabled(name) } else { msg::login_not_supported(name) })
        })?;
        let kind = ProviderKind::parse(&record.kind).unwrap_or(ProviderKind::Oidc);
        let config: ProviderConfig = serde_json::from_str(&record.config).map_err(|e| ApiError::Internal(format!("provider config: {e}")))?;
        let secret = match record.secret_sealed.as_str() {
            "" => None,
            sealed => Some(key.open(&tenant.record.name, &record.name, sealed).map_err(|e| ApiError::Internal(e.into()))?.expose_secret().to_string()),
        };
        Ok(Self { record, config, kind, secret })
    }

    async fn metadata(&self, state: &AppState, tenant: &Arc<Tenant>) -> Result<Arc<Discovered>> {
        // One entry per provider (a changed provider replaces its entry): the cache is bounded by
        // the providers there are.
        let key = self.cache_key(tenant);
        let cached = state.discovery.entries.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(d) = cached.filter(|d| d.version == self.record.updated_at && d.fetched.elapsed() < DISCOVERY_TTL) {
            return Ok(d.clone());
        }
        let url = self.config.discovery_url.as_deref().unwrap_or_default();
        let issuer =
            issuer_of(url).ok_or_else(|| ApiError::Internal(format!("the discovery URL {url} does not end with /.well-known/openid-configuration")))?;
        let issuer = IssuerUrl::new(issuer).map_err(|e| ApiError::Internal(e.to_string()))?;
        let failed = |e: &dyn std::error::Error| provider_failed(&self.record.name, &format!("discovery failed: {}", error_chain(e)));
        let metadata = if self.kind == ProviderKind::Aad {
            // Entra's multi-tenant documents (`common`, `organizations`) name a templated issuer
            // (`…/{tenantid}/v2.0`) that no token carries: read as they are, the issuer is checked per
            // token (`Oidc::expected_issuer`).
            let req = axum::http::Request::get(url).header(header::ACCEPT, "application/json").body(Vec::new()).map_err(|e| failed(&e))?;
            let resp = fetch(tenant, req).await.map_err(|e| failed(&e))?;
            if !resp.status().is_success() {
                return Err(provider_failed(&self.record.name, &format!("discovery failed: HTTP {} at {url}", resp.status())));
            }
            let metadata: CoreProviderMetadata = serde_json::from_slice(resp.body()).map_err(|e| failed(&e))?;
            if !metadata.issuer().as_str().contains(TENANT_ID) && metadata.issuer() != &issuer {
                return Err(provider_failed(
                    &self.record.name,
                    &format!("discovery failed: the document's issuer {} is not {}", metadata.issuer().as_str(), issuer.as_str()),
                ));
            }
            let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &http_client(tenant)).await.map_err(|e| failed(&e))?;
            metadata.set_jwks(jwks)
        } else {
            CoreProviderMetadata::discover_async(issuer, &http_client(tenant)).await.map_err(|e| failed(&e))?
        };
        let d = Arc::new(Discovered { version: self.record.updated_at.clone(), metadata, fetched: Instant::now(), keys_refreshed: None });
        let mut entries = state.discovery.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Providers removed (or renamed) leave entries behind: past a bound, the cache starts over.
        if entries.len() >= MAX_DISCOVERY_ENTRIES {
            entries.clear();
        }
        entries.insert(key, d.clone());
        Ok(d)
    }

    /// The keys again (an unknown key id: the provider rotated), unless they were refreshed lately.
    async fn refresh_keys(&self, state: &AppState, tenant: &Arc<Tenant>, old: &Discovered) -> Result<Option<Arc<Discovered>>> {
        if old.keys_refreshed.is_some_and(|t| t.elapsed() < KEY_REFRESH_EVERY) {
            return Ok(None);
        }
        let jwks = CoreJsonWebKeySet::fetch_async(old.metadata.jwks_uri(), &http_client(tenant))
            .await
            .map_err(|e| provider_failed(&self.record.name, &format!("fetching keys failed: {}", error_chain(&e))))?;
        let d = Arc::new(Discovered {
            version: old.version.clone(),
            metadata: old.metadata.clone().set_jwks(jwks),
            fetched: old.fetched,
            keys_refreshed: Some(Instant::now()),
        });
        let key = self.cache_key(tenant);
        state.discovery.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(key, d.clone());
        Ok(Some(d))
    }

    /// The issuer a token must name: the document's, with an Entra template's `{tenantid}` filled
    /// from the token's `tid` (a GUID), so tokens of any Entra tenant verify against their own issuer.
    fn expected_issuer(&self, metadata: &CoreProviderMetadata, token: &str) -> Result<IssuerUrl> {
        let template = metadata.issuer().as_str();
        if !template.contains(TENANT_ID) {
            return Ok(metadata.issuer().clone());
        }
        let tid = payload(token).and_then(|c| c.get("tid").and_then(Json::as_str).map(str::to_string)).unwrap_or_default();
        if !is_guid(&tid) {
            return Err(ApiError::Unauthorized("The id_token is not valid: no Entra tenant id (tid)".into()));
        }
        if !self.config.entra_tenants.is_empty() && !self.config.entra_tenants.contains(&tid.to_ascii_lowercase()) {
            return Err(ApiError::Unauthorized(format!("The id_token is not valid: users of the Entra tenant {tid} may not sign in to this service")));
        }
        IssuerUrl::new(template.replace(TENANT_ID, &tid)).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The tenant's Facebook app (a provider of kind `facebook` with its secret set).
    fn facebook_app(&self) -> Option<super::facebook::FacebookApp<'_>> {
        let secret = self.secret.as_deref()?;
        (self.kind == ProviderKind::Facebook).then_some(super::facebook::FacebookApp { id: &self.record.client_id, secret })
    }

    fn cache_key(&self, tenant: &Tenant) -> String {
        format!("{}\0{}", tenant.record.name, self.record.name)
    }

    fn accepts_audience(&self, aud: &str) -> bool {
        aud == self.record.client_id || self.config.audiences.iter().any(|a| a == aud)
    }

    /// Verifies an id token: signature (asymmetric algorithms, the provider's keys, refreshed once
    /// for an unknown key id), issuer, audience (the client id or another configured one; `azp` one
    /// of them when there are several), expiry, `iat`/`nbf` not in the future, and the nonce when
    /// one is expected. The verified claims, as JSON.
    async fn verify(&self, state: &AppState, tenant: &Arc<Tenant>, token: &str, nonce: Option<&Nonce>) -> Result<Map<String, Json>> {
        let fail = |m: String| ApiError::Unauthorized(format!("The id_token is not valid: {m}"));
        let id_token: CoreIdToken = token.parse().map_err(|e| fail(format!("{e}")))?;
        // The audience the token names that is one of this provider's clients (the web client, or
        // another of the same app such as its iOS client); the verifier requires it.
        let named: Vec<String> = match payload(token).and_then(|c| c.get("aud").cloned()) {
            Some(Json::String(a)) => vec![a],
            Some(Json::Array(a)) => a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => vec![],
        };
        let client_id = named.into_iter().find(|a| self.accepts_audience(a)).unwrap_or_else(|| self.record.client_id.clone());
        let mut discovered = self.metadata(state, tenant).await?;
        for attempt in 0..2 {
            let verifier = openidconnect::core::CoreIdTokenVerifier::new_public_client(
                ClientId::new(client_id.clone()),
                self.expected_issuer(&discovered.metadata, token)?,
                discovered.metadata.jwks().clone(),
            )
            .set_allowed_algs(ALGS)
            .set_other_audience_verifier_fn(|aud| self.accepts_audience(aud.as_str()))
            .set_issue_time_verifier_fn(|iat| {
                if iat > chrono::Utc::now() + chrono::Duration::minutes(5) {
                    Err("issued in the future".into())
                } else {
                    Ok(())
                }
            });
            let any_nonce = |_: Option<&Nonce>| Ok(());
            let checked = match nonce {
                Some(n) => id_token.claims(&verifier, n).map(|_| ()),
                None => id_token.claims(&verifier, any_nonce).map(|_| ()),
            };
            match checked {
                Ok(()) => break,
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(openidconnect::SignatureVerificationError::NoMatchingKey))
                    if attempt == 0 =>
                {
                    match self.refresh_keys(state, tenant, &discovered).await? {
                        Some(d) => discovered = d,
                        None => return Err(fail("no key of the provider matches its signature".into())),
                    }
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        // The claims as the token carries them (verified above), for azp, nbf and the credentials.
        let claims = payload(token).ok_or_else(|| fail("unreadable claims".into()))?;
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Json::String(a)) => vec![a.as_str()],
            Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
            _ => vec![],
        };
        match claims.get("azp").and_then(Json::as_str) {
            Some(azp) if !self.accepts_audience(azp) => return Err(fail(format!("the authorized party {azp} is not a client of this service"))),
            None if audiences.len() > 1 => return Err(fail("several audiences and no authorized party".into())),
            _ => {}
        }
        if claims.get("nbf").and_then(Json::as_f64).is_some_and(|nbf| nbf > (chrono::Utc::now().timestamp() + 300) as f64) {
            return Err(fail("not valid yet".into()));
        }
        if claims.get("sub").and_then(Json::as_str).is_none_or(str::is_empty) {
            return Err(fail("no subject".into()));
        }
        Ok(claims)
    }

    fn client(
        &self,
        discovered: &Discovered,
        redirect: Option<&str>,
    ) -> Result<
        openidconnect::core::CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        let mut client = CoreClient::from_provider_metadata(
            discovered.metadata.clone(),
            ClientId::new(self.record.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        );
        if let Some(r) = redirect {
            client = client.set_redirect_uri(RedirectUrl::new(r.to_string()).map_err(|e| ApiError::Internal(e.to_string()))?);
        }
        Ok(client)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

fn provider_failed(name: &str, detail: &str) -> ApiError {
    tracing::warn!(provider = %name, "Identity provider request failed: {detail}");
    ApiError::Unauthorized(format!("Logging in with {name} failed: {detail}"))
}

/// The claims segment of a JWT, as JSON (after its signature was checked).
fn payload(token: &str) -> Option<Map<String, Json>> {
    use base64::Engine as _;
    let part = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Json::Object(m) => Some(m),
        _ => None,
    }
}

/// The `urn:microsoft:credentials` claim: the provider's claims and access token, sealed with
/// XChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the tenant's master key. Mobile
/// Services used `aes-256-cbc` with `EVP_BytesToKey(MD5)` (no integrity); only the server reads it.
pub fn seal_credentials(master_key: &str, credentials: &Json) -> String {
    super::seal_with(&credentials_key(master_key), CREDENTIALS_AAD, credentials.to_string().as_bytes())
}

/// Opens a credentials claim [`seal_credentials`] sealed with the same master key.
pub fn open_credentials(master_key: &str, sealed: &str) -> Option<Json> {
    serde_json::from_slice(&super::open_with(&credentials_key(master_key), CREDENTIALS_AAD, sealed)?).ok()
}

const CREDENTIALS_AAD: &[u8] = b"roost urn:microsoft:credentials";

fn credentials_key(master_key: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, master_key.as_bytes())
        .expand(b"roost urn:microsoft:credentials v1", &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

/// The §5.4 answer for a verified identity: the token of §5.3 with the credentials claim.
fn login_body(state: &AppState, tenant: &Tenant, p: &Oidc, claims: &Map<String, Json>, access_token: Option<&str>) -> Json {
    let sub = claims.get("sub").and_then(Json::as_str).unwrap_or_default();
    let user_id = format!("{}:{sub}", p.config.uid_prefix);
    let mut credentials = Map::new();
    for k in ["sub", "iss", "aud", "email", "email_verified", "name", "given_name", "family_name", "preferred_username", "picture", "tid", "oid"] {
        if let Some(v) = claims.get(k) {
            credentials.insert(k.to_string(), v.clone());
        }
    }
    if let Some(t) = access_token {
        credentials.insert("accessToken".into(), Json::String(t.to_string()));
    }
    let mut extra = Map::new();
    extra.insert("urn:microsoft:credentials".into(), Json::String(seal_credentials(&tenant.record.master_key, &Json::Object(credentials))));
    // The tenant's token lifetime (§5.3: 30 days by default), within the platform's ceiling.
    let days = tenant.record.settings.login_token_days.clamp(1, state.maxima_for(&tenant.record).login_token_days.max(1));
    let token = crate::auth::mint_token_with(tenant.token_key(), &user_id, days as i64 * 24 * 3600, &extra);
    json!({ "user": { "userId": user_id }, "authenticationToken": token })
}

/// Login requests (`/login/{provider}`, any method) one client address may make per tenant in a
/// minute.
pub const LOGINS_PER_ADDRESS: usize = 60;
/// Login requests to one provider of a tenant in a minute, from all addresses.
pub const LOGINS_PER_PROVIDER: usize = 600;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

fn login_keys(tenant: &str, provider: &str, address: &str) -> [(String, usize); 2] {
    [(format!("login\0a\0{tenant}\0{address}"), LOGINS_PER_ADDRESS), (format!("login\0p\0{tenant}\0{}", provider.to_ascii_lowercase()), LOGINS_PER_PROVIDER)]
}

/// The rate limits of §5.5's endpoints: 429 with `Retry-After`.
async fn admit(state: &AppState, r: &TenantRequest, provider: &str, address: Option<std::net::SocketAddr>) -> Result<()> {
    let address = address.map(|a| a.ip().to_string()).unwrap_or_default();
    // Names that are no provider of the tenant share one count (a client may not grow the limiter's
    // table with made-up names).
    let provider = if r.tenant.provider(provider).is_some() { provider } else { "\0unknown" };
    // Counted in the catalog: the limits hold across every node.
    let keys = login_keys(&r.tenant.record.name, provider, &address);
    match state.storage.rate_limit(&keys, LOGIN_WINDOW.as_millis() as i64, true).await? {
        Some(wait) => Err(ApiError::TooManyRequests(wait)),
        None => Ok(()),
    }
}

fn query<'a>(r: &'a TenantRequest, name: &str) -> Option<&'a str> {
    r.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn cookies(r: &TenantRequest) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for v in r.headers.get_all(header::COOKIE) {
        for pair in v.to_str().unwrap_or("").split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.starts_with("wams_") {
                    let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
                    out.insert(k.to_string(), v);
                }
            }
        }
    }
    out
}

/// The login URL of this provider as the browser reached it, and the tenant's base.
fn urls(r: &TenantRequest, name: &str) -> (String, String) {
    let host = r.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let at = r.raw_path.to_ascii_lowercase().rfind("/login").unwrap_or(r.raw_path.len());
    let base = format!("{}://{host}{}", r.scheme, &r.raw_path[..at]);
    (format!("{base}/login/{}", name.to_ascii_lowercase()), base)
}

struct Cookies {
    set: Vec<String>,
    secure: bool,
    path: String,
}

impl Cookies {
    fn new(r: &TenantRequest) -> Self {
        let at = r.raw_path.to_ascii_lowercase().rfind("/login").unwrap_or(0);
        Self { set: Vec::new(), secure: r.scheme == "https", path: format!("{}/login", &r.raw_path[..at]) }
    }
    fn add(&mut self, name: &str, value: &str) {
        let v = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
        let secure = if self.secure { "; Secure" } else { "" };
        self.set.push(format!("{name}={v}; Path={}; Max-Age={FLOW_COOKIE_SECONDS}; HttpOnly; SameSite=Lax{secure}", self.path));
    }
    /// §5.5 step 6: every `wams_*` cookie the request sent and this answer does not set again is deleted.
    fn finish(self, sent: &HashMap<String, String>, mut resp: Response) -> Response {
        let secure = if self.secure { "; Secure" } else { "" };
        let kept: Vec<String> = self.set.iter().filter_map(|c| c.split('=').next().map(str::to_string)).collect();
        let mut all = self.set.clone();
        for name in sent.keys().filter(|n| !kept.contains(n)) {
            all.push(format!("{name}=deleted; Path={}; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly{secure}", self.path));
        }
        for c in all {
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        resp
    }
}

/// `GET /login/{provider}`: the start of the server-directed flow, or the provider's redirect back.
pub async fn login_get(
    State(state): State<AppState>,
    r: TenantCall,
    Path((_tenant, name)): Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
) -> Result<Response> {
    let sent = cookies(&r);
    if name.eq_ignore_ascii_case("done") {
        return Ok(StatusCode::OK.into_response());
    }
    admit(&state, &r, &name, peer.map(|p| p.0 .0)).await?;
    let is_callback = ["code", "state", "error"].iter().any(|k| query(&r, k).is_some());
    if !is_callback {
        return start(&state, &r, &name, sent).await;
    }
    let completion: Option<(String, String)> = sent
        .get("wams_completionAction")
        .and_then(|c| serde_json::from_str::<Json>(c).ok())
        .map(|c| (c["type"].as_str().unwrap_or("").to_string(), c["origin"].as_str().unwrap_or("").to_string()));
    let outcome = callback(&state, &r, &name, &sent).await;
    let (_, base) = urls(&r, &name);
    let resp = complete(&r, &base, completion, outcome)?;
    Ok(Cookies::new(&r).finish(&sent, resp))
}

async fn start(state: &AppState, r: &TenantCall, name: &str, sent: HashMap<String, String>) -> Result<Response> {
    let p = Oidc::find(&state.identity_key, &r.tenant, name)?;
    let completion = match (query(r, "completion_type"), query(r, "completion_origin")) {
        (Some(t), Some(origin)) if t == "postMessage" || t == "iframe" => {
            if !crate::http::cors::origin_allowed(&r.tenant.record.settings.cors_origins, origin) {
                return Err(ApiError::Unauthorized(msg::not_whitelisted(origin)));
            }
            Some(json!({ "type": t, "origin": origin }))
        }
        (Some(_), None) | (None, Some(_)) | (Some(_), Some(_)) => {
            return Err(ApiError::BadInput("completion_type must be postMessage or iframe, with a completion_origin.".into()))
        }
        (None, None) => None,
    };
    // §5.5's optional start parameters: more scopes (`scope`, comma- or space-separated), and the
    // provider's `display` and `access_type`, passed on when they are plain tokens.
    let plain = |v: &str| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    let mut scopes = p.config.scopes.clone();
    for s in query(r, "scope").unwrap_or("").split([',', ' ']).filter(|s| plain(s)).take(10) {
        if !scopes.iter().any(|c| c == s) && s != "openid" {
            scopes.push(s.to_string());
        }
    }
    let mut cookies = Cookies::new(r);
    if let Some(c) = completion {
        cookies.add("wams_completionAction", &c.to_string());
    }
    if p.kind == ProviderKind::Facebook {
        let app = p.facebook_app().ok_or_else(|| ApiError::Unauthorized(msg::login_not_enabled(name)))?;
        let csrf = CsrfToken::new_random();
        let (redirect, _) = urls(r, name);
        let display = query(r, "display").filter(|v| plain(v)).unwrap_or("touch");
        let url = super::facebook::authorize_url(&state.facebook, &app, &redirect, csrf.secret(), &scopes, display);
        cookies.add("wams_state", csrf.secret());
        let resp = (StatusCode::FOUND, [(header::LOCATION, url)]).into_response();
        return Ok(cookies.finish(&sent, resp));
    }
    let discovered = p.metadata(state, &r.tenant).await?;
    let (redirect, _) = urls(r, name);
    let client = p.client(&discovered, Some(&redirect))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut auth = client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).set_pkce_challenge(challenge);
    for s in &scopes {
        auth = auth.add_scope(Scope::new(s.clone()));
    }
    for name in ["display", "access_type"] {
        if let Some(v) = query(r, name).filter(|v| plain(v)) {
            auth = auth.add_extra_param(name, v);
        }
    }
    let (url, csrf, nonce) = auth.url();
    cookies.add("wams_state", csrf.secret());
    cookies.add("wams_nonce", nonce.secret());
    cookies.add("wams_pkce", verifier.secret());
    let resp = (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response();
    Ok(cookies.finish(&sent, resp))
}

/// The redirect back: the state checked against its cookie, the code exchanged (with the PKCE
/// verifier and the client secret), the id token verified with the nonce of the cookie.
async fn callback(state: &AppState, r: &TenantCall, name: &str, sent: &HashMap<String, String>) -> std::result::Result<Json, String> {
    let p = Oidc::find(&state.identity_key, &r.tenant, name).map_err(message)?;
    if let Some(e) = query(r, "error") {
        return Err(query(r, "error_description").map(|d| format!("{e}: {d}")).unwrap_or_else(|| e.to_string()));
    }
    let given = query(r, "state").ok_or_else(|| msg::redirect_without_state(name))?;
    let expected = sent.get("wams_state").ok_or_else(|| msg::redirect_without_state_cookie(name))?;
    if !crate::auth::secrets_equal(given, expected) {
        return Err(msg::redirect_bad_state(name));
    }
    let code = query(r, "code").ok_or_else(|| format!("Redirect from {name} does not contain an authorization code."))?;
    if let Some(app) = p.facebook_app() {
        let (redirect, _) = urls(r, name);
        let (claims, access) = super::facebook::from_code(&state.facebook, &r.tenant, &app, code, &redirect).await?;
        return Ok(login_body(state, &r.tenant, &p, &claims, Some(&access)));
    }
    let nonce = Nonce::new(sent.get("wams_nonce").cloned().ok_or_else(|| msg::redirect_without_state_cookie(name))?);
    let verifier = PkceCodeVerifier::new(sent.get("wams_pkce").cloned().ok_or_else(|| msg::redirect_without_state_cookie(name))?);
    let discovered = p.metadata(state, &r.tenant).await.map_err(message)?;
    let (redirect, _) = urls(r, name);
    let client = p.client(&discovered, Some(&redirect)).map_err(message)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| e.to_string())?
        .set_pkce_verifier(verifier)
        .request_async(&http_client(&r.tenant))
        .await
        .map_err(|e| format!("Logging in with {name} failed: the code exchange failed: {}", error_chain(&e)))?;
    let id_token = token.id_token().ok_or_else(|| format!("Logging in with {name} failed: the provider sent no id_token."))?;
    let claims = p.verify(state, &r.tenant, &id_token.to_string(), Some(&nonce)).await.map_err(message)?;
    Ok(login_body(state, &r.tenant, &p, &claims, Some(token.access_token().secret())))
}

fn message(e: ApiError) -> String {
    match e {
        ApiError::Unauthorized(m) | ApiError::BadInput(m) | ApiError::NotFound(m) => m,
        ApiError::Internal(m) => {
            tracing::warn!(error.cause = %m, "Login failed on an internal error");
            msg::INTERNAL.into()
        }
        other => format!("{other:?}"),
    }
}

/// The postMessage completion page (`templates/login_postmessage.html`).
#[derive(askama::Template)]
#[template(path = "login_postmessage.html")]
struct PostMessagePage {
    oauth: String,
    error: String,
    origin: String,
}

/// The iframe completion page (`templates/login_iframe.html`).
#[derive(askama::Template)]
#[template(path = "login_iframe.html")]
struct IframePage {
    oauth: String,
    error: String,
}

fn embed(v: &Json) -> String {
    v.to_string().replace('<', "\\u003c").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

/// §5.5 step 4: the completion the start request asked for (its origin checked again).
fn complete(r: &TenantRequest, base: &str, completion: Option<(String, String)>, outcome: std::result::Result<Json, String>) -> Result<Response> {
    let (oauth, error) = match &outcome {
        Ok(body) => (body.clone(), Json::Null),
        Err(m) => (Json::Null, Json::String(format!("Error: {m}"))),
    };
    match completion {
        None => {
            let fragment = match &outcome {
                Ok(body) => format!("token={}", percent_encoding::utf8_percent_encode(&body.to_string(), URI_COMPONENT)),
                Err(m) => format!("error={}", percent_encoding::utf8_percent_encode(&format!("Error: {m}"), URI_COMPONENT)),
            };
            Ok((StatusCode::FOUND, [(header::LOCATION, format!("{base}/login/done#{fragment}"))]).into_response())
        }
        Some((kind, origin)) => {
            if !crate::http::cors::origin_allowed(&r.tenant.record.settings.cors_origins, &origin) {
                return Err(ApiError::Unauthorized(msg::not_whitelisted(&origin)));
            }
            use askama::Template as _;
            let (oauth, error) = (embed(&oauth), embed(&error));
            let page = if kind == "iframe" {
                IframePage { oauth, error }.render()
            } else {
                PostMessagePage { oauth, error, origin: embed(&Json::String(origin)) }.render()
            }
            .map_err(|e| ApiError::Internal(format!("login page: {e}")))?;
            let mut resp = (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                page,
            )
                .into_response();
            resp.extensions_mut().insert(crate::http::OwnPage);
            Ok(resp)
        }
    }
}

/// What JavaScript's `encodeURIComponent` leaves as it is.
const URI_COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'!').remove(b'~').remove(b'*').remove(b'\'').remove(b'(').remove(b')');

/// `POST /login/{provider}` (client-directed): `{"id_token": …}` verified against the provider's keys
/// (a replay within its lifetime refused), or `{"access_token": …}` for its userinfo endpoint.
pub async fn login_post(
    State(state): State<AppState>,
    r: TenantCall,
    Path((_tenant, name)): Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
) -> Result<Response> {
    admit(&state, &r, &name, peer.map(|p| p.0 .0)).await?;
    let p = Oidc::find(&state.identity_key, &r.tenant, &name)?;
    let body: Json = r.body.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Json::Null);
    let display = p.config.uid_prefix.clone();
    if p.kind == ProviderKind::Facebook {
        // §5.5: the Facebook SDK's access token, checked with Graph (`identity/facebook.rs`).
        let app = p.facebook_app().ok_or_else(|| ApiError::Unauthorized(msg::login_not_enabled(&name)))?;
        let token = body.get("access_token").and_then(Json::as_str).ok_or_else(|| ApiError::Unauthorized(msg::FACEBOOK_POST_NEEDS_TOKEN.into()))?;
        let (claims, long) = super::facebook::from_access_token(&state.facebook, &r.tenant, &app, token).await.map_err(ApiError::Unauthorized)?;
        return Ok(axum::Json(login_body(&state, &r.tenant, &p, &claims, Some(&long))).into_response());
    }
    if let Some(token) = body.get("id_token").and_then(Json::as_str) {
        let claims = p.verify(&state, &r.tenant, token, None).await?;
        let exp = claims.get("exp").and_then(Json::as_i64).unwrap_or(0);
        let key = match (claims.get("jti").and_then(Json::as_str), claims.get("nonce").and_then(Json::as_str)) {
            (Some(jti), _) => format!("jti:{jti}"),
            (None, Some(n)) => format!("nonce:{n}"),
            (None, None) => format!("hash:{}", crate::accounts::secret_hash(token)),
        };
        let iss = claims.get("iss").and_then(Json::as_str).unwrap_or_default();
        // Replayed client-directed id tokens (their `jti`, else their nonce, else their hash) are
        // refused until they expire, on every node: the catalog holds the keys used.
        if !state.storage.first_use(&format!("{}\0{}\0{iss}\0{key}", r.tenant.record.name, p.record.name), exp).await? {
            return Err(ApiError::Unauthorized(msg::TOKEN_REPLAYED.into()));
        }
        return Ok(axum::Json(login_body(&state, &r.tenant, &p, &claims, None)).into_response());
    }
    // The Live SDK's token (`login('<jwt>')` of the Mobile Services clients): HS256, keyed with
    // SHA-256(client secret + "JWTSig"); its `uid` is the user's id at Microsoft.
    if let (ProviderKind::MicrosoftAccount, Some(live)) = (p.kind, body.get("authenticationToken").and_then(Json::as_str)) {
        let secret = p.secret.as_deref().ok_or_else(|| ApiError::Unauthorized(msg::login_not_enabled(&name)))?;
        let user = crate::auth::validate_token(secret, live).map_err(|m| ApiError::Unauthorized(m.into()))?;
        let mut claims = Map::new();
        claims.insert("sub".into(), Json::String(user.user_id));
        return Ok(axum::Json(login_body(&state, &r.tenant, &p, &claims, None)).into_response());
    }
    if let Some(access) = body.get("access_token").and_then(Json::as_str) {
        let discovered = p.metadata(&state, &r.tenant).await?;
        let client = p.client(&discovered, None)?;
        let info: openidconnect::core::CoreUserInfoClaims = client
            .user_info(openidconnect::AccessToken::new(access.to_string()), None)
            .map_err(|_| ApiError::Unauthorized(format!("{display} has no userinfo endpoint: POST an id_token instead.")))?
            .request_async(&http_client(&r.tenant))
            .await
            .map_err(|e| ApiError::Unauthorized(format!("The access_token was refused by {display}: {}", error_chain(&e))))?;
        let mut claims = match serde_json::to_value(&info).unwrap_or(Json::Null) {
            Json::Object(m) => m,
            _ => Map::new(),
        };
        claims.insert("sub".into(), Json::String(info.subject().to_string()));
        return Ok(axum::Json(login_body(&state, &r.tenant, &p, &claims, Some(access))).into_response());
    }
    Err(ApiError::Unauthorized(msg::post_needs(&display, "an id_token or an access_token")))
}

/// `POST /login`: the Mobile Services clients' `login('<Live SDK token>')`, a Microsoft Account login.
pub async fn login_post_bare(
    state: State<AppState>,
    r: TenantCall,
    Path(tenant): Path<String>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
) -> Result<Response> {
    login_post(state, r, Path((tenant, "microsoftaccount".into())), peer).await
}
