//! Keys and Mobile Services authentication tokens (protocol.md §5.1, §5.3, R6).
//!
//! Tokens are HS256 JWTs signed with `SHA-256(masterKey + "JWTSig")`. Every key, token and signature
//! comparison runs in constant time: both sides are hashed first, so even their lengths do not leak.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use roost_api::Permission;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.ct_eq(&hb).into()
}

/// A fresh random key (32 random bytes, base64 without padding characters that need escaping).
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_key(master_key: &str) -> [u8; 32] {
    Sha256::digest(format!("{master_key}JWTSig").as_bytes()).into()
}

fn sign(master_key: &str, signed_part: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&signing_key(master_key)).unwrap_or_else(|_| unreachable_hmac());
    mac.update(signed_part.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // `Hmac::new_from_slice` only fails for fixed-size-key MACs; HMAC has none.
    panic!("HMAC rejected a key")
}

/// Mints a user token as the login flow does (§5.3): `uid` like `Custom:42`, valid for `ttl_seconds`.
pub fn mint_token(master_key: &str, user_id: &str, ttl_seconds: i64) -> String {
    mint_token_with(master_key, user_id, ttl_seconds, &serde_json::Map::new())
}

/// Claims a minted token's extra claims may not set: the ones §5.3 defines and validation reads.
pub const RESERVED_CLAIMS: [&str; 8] = ["exp", "iss", "ver", "aud", "uid", "id", "iat", "nbf"];

/// [`mint_token`] with extra claims after the §5.3 ones (the caller has refused [`RESERVED_CLAIMS`]).
pub fn mint_token_with(master_key: &str, user_id: &str, ttl_seconds: i64, extra: &serde_json::Map<String, serde_json::Value>) -> String {
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"0"}"#;
    let aud = user_id.split(':').next().unwrap_or("Custom");
    let exp = chrono::Utc::now().timestamp() + ttl_seconds;
    let mut claims = serde_json::json!({
        "exp": exp,
        "iss": "urn:microsoft:windows-azure:zumo",
        "ver": 2,
        "aud": aud,
        "uid": user_id,
    });
    if let Some(c) = claims.as_object_mut() {
        for (k, v) in extra {
            if !RESERVED_CLAIMS.contains(&k.as_str()) {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = URL_SAFE_NO_PAD.encode(sign(master_key, &signed));
    format!("{signed}.{sig}")
}

/// A validated token's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The `uid` (or `id`) claim.
    pub user_id: String,
    /// The sealed `urn:microsoft:credentials` claim, if the token has one.
    pub credentials: Option<String>,
}

/// A token time claim in seconds since the epoch. One above 10^11 (the year 5138 in seconds, March
/// 1973 in milliseconds) is milliseconds: the Mobile Services custom-authentication sample wrote
/// `exp` as `Date.valueOf()`, which the original compared with seconds, so its tokens never expired.
fn seconds(t: f64) -> f64 {
    if t > 1e11 {
        t / 1000.0
    } else {
        t
    }
}

/// Validates an `X-ZUMO-AUTH` token; the error is the client-facing message of §5.3. The header's
/// `kid` is not read (the sample writes the number `0`, Roost the string `"0"`); `iss`, `aud` and
/// `ver` are not checked, as in the original.
pub fn validate_token(master_key: &str, token: &str) -> Result<TokenUser, &'static str> {
    if token.is_empty() {
        return Err("Invalid token format. Token must not be empty.");
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("Invalid token format. Expected Envelope.Claims.Signature.");
    }
    if parts[0].is_empty() {
        return Err("Invalid token format. Envelope must not be empty.");
    }
    if parts[1].is_empty() {
        return Err("Invalid token format. Claims must not be empty.");
    }
    if parts[2].is_empty() {
        return Err("Invalid token format. Signature must not be empty.");
    }
    let decode = |s: &str| -> Option<serde_json::Value> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = decode(parts[0]).filter(|v| v.is_object()).ok_or("Invalid token format. Expected Envelope.Claims.Signature.")?;
    let claims = decode(parts[1]).filter(|v| v.is_object()).ok_or("Invalid token format. Expected Envelope.Claims.Signature.")?;
    if let Some(typ) = header.get("typ") {
        if typ.as_str() != Some("JWT") {
            return Err("The authentication token type is invalid.");
        }
    }
    // R6: only HS256 (there are no provider RS256 keys configured yet); `none` is refused.
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err("The authentication token alg is not supported.");
    }
    let now = chrono::Utc::now().timestamp() as f64;
    let time = |name: &str| claims.get(name).and_then(|v| v.as_f64()).map(seconds);
    let exp = time("exp").ok_or("The authentication token requires expiration claim.")?;
    if exp <= now {
        return Err("The authentication token has expired.");
    }
    if time("iat").is_some_and(|iat| iat > now + 300.0) {
        return Err("The authentication token is not valid until after its IssuedAt.");
    }
    if time("nbf").is_some_and(|nbf| nbf > now + 300.0) {
        return Err("The authentication token is not valid until after its NotBefore.");
    }
    let expected = URL_SAFE_NO_PAD.encode(sign(master_key, &format!("{}.{}", parts[0], parts[1])));
    if !secrets_equal(&expected, parts[2].trim_end_matches('=')) {
        return Err("The authentication token has an invalid signature.");
    }
    let user_id = claims.get("uid").or_else(|| claims.get("id")).and_then(|v| v.as_str()).ok_or("The authentication token has no user id.")?;
    let credentials = claims.get("urn:microsoft:credentials").and_then(|v| v.as_str()).map(str::to_string);
    Ok(TokenUser { user_id: user_id.to_string(), credentials })
}

/// Who is calling, from the request's keys and token.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// A valid `X-ZUMO-MASTER`.
    pub master: bool,
    /// A valid `X-ZUMO-APPLICATION`.
    pub application: bool,
    /// A valid `X-ZUMO-AUTH`.
    pub user: Option<TokenUser>,
}

impl Caller {
    /// `user.level` as scripts see it (§5.1).
    pub fn level(&self) -> &'static str {
        if self.master {
            "admin"
        } else if self.user.is_some() {
            "authenticated"
        } else {
            "anonymous"
        }
    }

    /// `user` as a script gets it: `{level, userId?, identities?}` (the identities opened with the
    /// tenant's master key; scripts reach them only through `getIdentities`).
    pub fn script_user(&self, master_key: &str) -> serde_json::Value {
        let mut user = serde_json::json!({ "level": self.level() });
        if let Some(u) = &self.user {
            user["userId"] = serde_json::Value::String(u.user_id.clone());
            if let Some(identities) = crate::identity::identities(master_key, u) {
                user["identities"] = identities;
            }
        }
        user
    }

    /// The permission check of §5.1.
    pub fn allows(&self, required: Permission, no_script: bool) -> bool {
        if self.master {
            return true;
        }
        if no_script {
            return false;
        }
        match required {
            Permission::Admin => false,
            Permission::User => self.user.is_some(),
            Permission::Application => self.application,
            Permission::Public => true,
        }
    }
}

/// Encodes a `__version` as the protocol shows it (standard base64 with padding).
pub fn version_b64(v: &[u8]) -> String {
    STANDARD.encode(v)
}

/// The permission a custom API's route needs (§5.2), from the `permissions` member of its
/// `api/<name>.json`: the route's entry (its key compared without slashes or case) or `*`, then a
/// permission for all verbs or the verb's own (or `*`); admin where nothing says otherwise.
pub fn api_permission(permissions: &serde_json::Value, route: &str, verb: &str) -> Permission {
    route_permission(permissions, route, verb).unwrap_or(Permission::Admin)
}

/// The permission a route's metadata names for a verb (§5.2, the lookup of [`api_permission`]), or
/// `None` where no entry covers it (the caller's default applies: admin for APIs, application for
/// the push routes of `extensions/push.json`).
pub fn route_permission(permissions: &serde_json::Value, route: &str, verb: &str) -> Option<Permission> {
    let trim = |s: &str| s.trim_matches('/').to_lowercase();
    let routes = permissions.get("routes").and_then(serde_json::Value::as_object)?;
    let entry = routes.iter().find(|(k, _)| k.as_str() != "*" && trim(k) == trim(route)).map(|(_, v)| v).or_else(|| routes.get("*"))?;
    let level = match entry.get("permission") {
        Some(serde_json::Value::String(p)) => Some(p.as_str()),
        _ => entry.get(verb).filter(|v| !v.is_null()).or_else(|| entry.get("*")).and_then(|v| v.get("permission")).and_then(serde_json::Value::as_str),
    }?;
    Some(match level {
        "public" => Permission::Public,
        "application" => Permission::Application,
        "user" | "authenticated" => Permission::User,
        _ => Permission::Admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_routes_take_their_own_permission_then_the_wildcard_then_admin() {
        let perms = serde_json::json!({"routes": {
            "*": {"get": {"permission": "public"}, "*": {"permission": "application"}},
            "/title/:title/": {"permission": "user"},
            "echo": {"put": {"permission": "authenticated"}, "get": null}
        }});
        assert_eq!(api_permission(&perms, "/", "get"), Permission::Public);
        assert_eq!(api_permission(&perms, "/", "post"), Permission::Application);
        assert_eq!(api_permission(&perms, "TITLE/:title", "delete"), Permission::User);
        assert_eq!(api_permission(&perms, "/echo", "put"), Permission::User);
        // A route's entry without the verb does not fall back to the wildcard route.
        assert_eq!(api_permission(&perms, "/echo", "post"), Permission::Admin);
        assert_eq!(api_permission(&serde_json::Value::Null, "/", "get"), Permission::Admin);
        let caller = Caller { master: false, application: true, user: None };
        assert!(caller.allows(api_permission(&perms, "/", "post"), false));
        assert!(!caller.allows(api_permission(&perms, "/title/:title", "get"), false));
    }

    #[test]
    fn minted_tokens_validate_and_tampering_is_refused() {
        let t = mint_token("master", "Custom:42", 3600);
        assert_eq!(validate_token("master", &t), Ok(TokenUser { user_id: "Custom:42".into(), credentials: None }));
        assert_eq!(validate_token("other", &t), Err("The authentication token has an invalid signature."));
        let expired = mint_token("master", "Custom:42", -10);
        assert_eq!(validate_token("master", &expired), Err("The authentication token has expired."));
        assert_eq!(validate_token("master", "a.b"), Err("Invalid token format. Expected Envelope.Claims.Signature."));
        assert_eq!(validate_token("master", ""), Err("Invalid token format. Token must not be empty."));
        let parts: Vec<&str> = t.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(validate_token("master", &format!("{none_header}.{}.{}", parts[1], parts[2])), Err("The authentication token alg is not supported."));
        let no_exp = URL_SAFE_NO_PAD.encode(r#"{"uid":"x"}"#);
        let signed = format!("{}.{no_exp}", parts[0]);
        let sig = URL_SAFE_NO_PAD.encode(sign("master", &signed));
        assert_eq!(validate_token("master", &format!("{signed}.{sig}")), Err("The authentication token requires expiration claim."));
    }

    #[test]
    fn permission_matrix() {
        use Permission::*;
        let anon = Caller::default();
        let app = Caller { application: true, ..Default::default() };
        let user = Caller { user: Some(TokenUser { user_id: "u".into(), credentials: None }), ..Default::default() };
        let master = Caller { master: true, ..Default::default() };
        let table = [
            (Public, [true, true, true, true]),
            (Application, [false, true, false, true]),
            (User, [false, false, true, true]),
            (Admin, [false, false, false, true]),
        ];
        for (perm, expected) in table {
            for (caller, exp) in [&anon, &app, &user, &master].iter().zip(expected) {
                assert_eq!(caller.allows(perm, false), exp, "{perm:?} {caller:?}");
            }
        }
        assert!(!app.allows(Public, true));
        assert!(master.allows(Admin, true));
    }
}
