//! Facebook Login as Mobile Services did it (protocol.md §5.5): OAuth 2.0 with Facebook's dialog and
//! its Graph API, which has no OpenID discovery document. `/login/facebook` (in [`super::login`])
//! calls these:
//! - the server-directed flow sends the browser to the dialog ([`authorize_url`]) with `state`, then
//!   exchanges the code with the app secret and asks `/me` for the person ([`from_code`]);
//! - the client-directed `POST` with the SDK's `access_token` ([`from_access_token`]) first asks
//!   `/debug_token`, with the app's own token, whether the token is valid **and was issued to this
//!   app** (a token another app obtained for the same person is refused: the token-substitution
//!   attack Mobile Services' exchange alone left to Facebook), exchanges it for a long-lived token
//!   (`grant_type=fb_exchange_token`, as Mobile Services did), then asks `/me`.
//!
//! Every Graph request carries `appsecret_proof` (HMAC-SHA256 of the token keyed with the app
//! secret), so apps that require it work; every one goes through the tenant's outbound address rules
//! ([`super::login::fetch`]). The person's app-scoped id is the `sub` of the §5.3 token
//! (`Facebook:<id>`).

use hmac::Mac as _;
use roost_storage::Tenant;
use serde_json::{Map, Value as Json};

/// Where Facebook is reached (`facebook_dialog_url`, `facebook_graph_url`).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The OAuth dialog browsers sign in at.
    pub dialog: String,
    /// The Graph API, without a trailing `/`.
    pub graph: String,
}

/// A tenant's Facebook app.
pub(super) struct FacebookApp<'a> {
    /// The app id (the provider's client id).
    pub id: &'a str,
    /// The app secret.
    pub secret: &'a str,
}

/// The dialog's URL for the start of the server-directed flow.
pub(super) fn authorize_url(ep: &Endpoints, app: &FacebookApp, redirect: &str, state: &str, scopes: &[String], display: &str) -> String {
    let mut url = reqwest::Url::parse(&ep.dialog).unwrap_or_else(|_| reqwest::Url::parse("https://www.facebook.com/dialog/oauth").expect("a URL"));
    url.query_pairs_mut()
        .append_pair("client_id", app.id)
        .append_pair("redirect_uri", redirect)
        .append_pair("state", state)
        .append_pair("response_type", "code")
        .append_pair("display", display);
    if !scopes.is_empty() {
        url.query_pairs_mut().append_pair("scope", &scopes.join(","));
    }
    url.to_string()
}

/// The person behind a code the dialog sent back: their claims and the user access token.
pub(super) async fn from_code(
    ep: &Endpoints,
    tenant: &Tenant,
    app: &FacebookApp<'_>,
    code: &str,
    redirect: &str,
) -> Result<(Map<String, Json>, String), String> {
    let answer = graph(ep, tenant, "/oauth/access_token", &[("client_id", app.id), ("client_secret", app.secret), ("redirect_uri", redirect), ("code", code)])
        .await
        .map_err(|e| format!("Logging in with facebook failed: the code exchange failed: {e}"))?;
    let token = access_token_of(&answer)?;
    let claims = me(ep, tenant, app, &token).await?;
    Ok((claims, token))
}

/// The person behind an access token a client holds: checked to be valid and issued to this app,
/// exchanged for a long-lived one; their claims and that token.
pub(super) async fn from_access_token(ep: &Endpoints, tenant: &Tenant, app: &FacebookApp<'_>, token: &str) -> Result<(Map<String, Json>, String), String> {
    if token.is_empty() || token.len() > 4096 {
        return Err("The access token is not valid.".into());
    }
    let app_token = format!("{}|{}", app.id, app.secret);
    let debug = graph(ep, tenant, "/debug_token", &[("input_token", token), ("access_token", &app_token)])
        .await
        .map_err(|e| format!("Logging in with facebook failed: {e}"))?;
    let data = &debug["data"];
    if data["is_valid"] != Json::Bool(true) {
        let why = data["error"]["message"].as_str().unwrap_or("it is not valid");
        return Err(format!("The access token was refused by Facebook: {why}"));
    }
    if data["app_id"].as_str() != Some(app.id) {
        return Err("The access token was issued to another Facebook app than this service's.".into());
    }
    let answer = graph(
        ep,
        tenant,
        "/oauth/access_token",
        &[("grant_type", "fb_exchange_token"), ("client_id", app.id), ("client_secret", app.secret), ("fb_exchange_token", token)],
    )
    .await
    .map_err(|e| format!("Logging in with facebook failed: the token exchange failed: {e}"))?;
    let long = access_token_of(&answer)?;
    let claims = me(ep, tenant, app, &long).await?;
    if data["user_id"].as_str().is_some_and(|u| Some(u) != claims.get("sub").and_then(Json::as_str)) {
        return Err("Logging in with facebook failed: the token's person is not the one /me names.".into());
    }
    Ok((claims, long))
}

fn access_token_of(answer: &Json) -> Result<String, String> {
    answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "Logging in with facebook failed: Facebook sent no access token.".into())
}

/// `GET /me` for the person's id, name and e-mail, as OpenID-style claims.
async fn me(ep: &Endpoints, tenant: &Tenant, app: &FacebookApp<'_>, token: &str) -> Result<Map<String, Json>, String> {
    let proof = appsecret_proof(app.secret, token);
    let person = graph(ep, tenant, "/me", &[("fields", "id,name,email,first_name,last_name"), ("access_token", token), ("appsecret_proof", &proof)])
        .await
        .map_err(|e| format!("Logging in with facebook failed: {e}"))?;
    let id = person["id"].as_str().unwrap_or_default();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("Logging in with facebook failed: /me named no person.".into());
    }
    let mut claims = Map::new();
    claims.insert("sub".into(), Json::String(id.to_string()));
    for (from, to) in [("name", "name"), ("email", "email"), ("first_name", "given_name"), ("last_name", "family_name")] {
        if let Some(v) = person.get(from).filter(|v| v.is_string()) {
            claims.insert(to.into(), v.clone());
        }
    }
    Ok(claims)
}

/// Graph's `appsecret_proof`: hex HMAC-SHA256 of the access token, keyed with the app secret.
fn appsecret_proof(secret: &str, token: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// One Graph API request (`GET`, the parameters in the query); the answer's JSON, or Graph's
/// error message.
async fn graph(ep: &Endpoints, tenant: &Tenant, path: &str, params: &[(&str, &str)]) -> Result<Json, String> {
    let mut url = reqwest::Url::parse(&format!("{}{path}", ep.graph)).map_err(|e| format!("facebook_graph_url: {e}"))?;
    url.query_pairs_mut().extend_pairs(params);
    let req = axum::http::Request::get(url.as_str()).header(axum::http::header::ACCEPT, "application/json").body(Vec::new()).map_err(|e| e.to_string())?;
    let resp = super::login::fetch(tenant, req).await.map_err(|e| e.to_string())?;
    let body: Json = serde_json::from_slice(resp.body()).unwrap_or(Json::Null);
    if !resp.status().is_success() {
        let why = body["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {}", resp.status()));
        return Err(why);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn appsecret_proofs_are_hmacs_of_the_token() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231's companion example.
        assert_eq!(
            super::appsecret_proof("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
