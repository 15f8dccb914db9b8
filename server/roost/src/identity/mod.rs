//! Identity: a tenant's identity providers (OpenID Connect issuers and the presets of protocol.md
//! §5.5), their client secrets sealed at rest, and their management (shared by the CLI and
//! `/manage/v1`).
//!
//! A client secret is sealed with XChaCha20-Poly1305 under the platform's identity key
//! (`identity_key`, else `<data>/identity-key`), with the tenant and provider names as associated
//! data: a sealed secret copied to another tenant's or provider's row does not open. Nothing shows a
//! stored secret again, only its last four characters.

pub mod facebook;
pub mod login;

use crate::manage::ManageError;
use crate::AppState;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use roost_api::{ProviderIn, ProviderKind, ProviderOut};
use roost_storage::identity::ProviderRecord;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};

/// Providers one tenant may have.
pub const MAX_PROVIDERS: usize = 16;
const MAX_CLIENT_ID: usize = 256;
const MAX_SECRET: usize = 1024;
const MAX_SCOPES: usize = 20;
const MAX_AUDIENCES: usize = 10;
const MAX_URL: usize = 2048;

/// The platform key sealing identity-provider secrets.
pub struct IdentityKey(SecretBox<[u8; 32]>);

impl IdentityKey {
    /// The configured key (64 hex digits), else the data folder's `identity-key` (created at random,
    /// mode 0600, by whichever process needs it first).
    pub fn load(configured: &SecretString, data: &std::path::Path) -> anyhow::Result<Self> {
        let text = configured.expose_secret().trim().to_string();
        if !text.is_empty() {
            return Self::parse(&text).ok_or_else(|| anyhow::anyhow!("identity_key must be 64 hex digits (32 bytes)"));
        }
        let path = data.join("identity-key");
        std::fs::create_dir_all(data)?;
        let fresh: [u8; 32] = rand::random();
        let hex: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut f) => std::io::Write::write_all(&mut f, hex.as_bytes()).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => anyhow::bail!("creating {}: {e}", path.display()),
        }
        let stored = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Self::parse(stored.trim()).ok_or_else(|| anyhow::anyhow!("{} must hold 64 hex digits", path.display()))
    }

    fn parse(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(SecretBox::new(Box::new(key))))
    }

    /// A fingerprint of the key (an HMAC of a fixed label): nodes compare it through the catalog
    /// without revealing the key.
    pub fn fingerprint(&self) -> String {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(self.0.expose_secret()).expect("any key length");
        mac.update(b"roost identity_key fingerprint v1");
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals a tenant provider's secret (bound to the tenant and the provider).
    pub fn seal(&self, tenant: &str, provider: &str, secret: &str) -> String {
        seal_with(self.0.expose_secret(), associated(tenant, provider).as_bytes(), secret.as_bytes())
    }

    /// Opens what [`IdentityKey::seal`] sealed for the same tenant and provider.
    pub fn open(&self, tenant: &str, provider: &str, sealed: &str) -> Result<SecretString, &'static str> {
        const REFUSED: &str =
            "the provider's client secret cannot be opened with this node's identity key (identity_key differs between nodes, or the row was altered)";
        let plain = open_with(self.0.expose_secret(), associated(tenant, provider).as_bytes(), sealed).ok_or(REFUSED)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| REFUSED)
    }
}

/// Seals `plain` with XChaCha20-Poly1305 under `key`, bound to `aad`: `v1.` + base64url(random
/// nonce ‖ ciphertext and tag).
pub(crate) fn seal_with(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> String {
    use base64::Engine as _;
    let nonce: [u8; 24] = rand::random();
    let sealed =
        XChaCha20Poly1305::new(key.into()).encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad }).expect("XChaCha20-Poly1305 sealing does not fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    format!("v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal_with`] sealed with the same key and associated data.
pub(crate) fn open_with(key: &[u8; 32], aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sealed.strip_prefix("v1.")?).ok()?;
    if bytes.len() < 24 + 16 {
        return None;
    }
    XChaCha20Poly1305::new(key.into()).decrypt(XNonce::from_slice(&bytes[..24]), Payload { msg: &bytes[24..], aad }).ok()
}

/// `localhost` or a loopback address: the only hosts a provider URL may reach over plain `http`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn associated(tenant: &str, provider: &str) -> String {
    format!("roost identity provider secret\0{}\0{}", tenant.to_ascii_lowercase(), provider.to_ascii_lowercase())
}

/// `user.getIdentities()` (§5.6) of a token: `{"<provider key>": {"userId", …claims, "accessToken"}}`,
/// from its credentials claim; `None` for a token without one (custom authentication) or one this
/// tenant's key does not open.
pub fn identities(master_key: &str, user: &crate::auth::TokenUser) -> Option<serde_json::Value> {
    let mut credentials = match login::open_credentials(master_key, user.credentials.as_deref()?)? {
        serde_json::Value::Object(m) => m,
        _ => return None,
    };
    let prefix = user.user_id.split(':').next().unwrap_or_default();
    // The provider keys of Mobile Services; any other provider by its name.
    let key = match prefix {
        "MicrosoftAccount" => "microsoft".to_string(),
        other => other.to_ascii_lowercase(),
    };
    credentials.insert("userId".into(), serde_json::Value::String(user.user_id.clone()));
    Some(serde_json::json!({ key: credentials }))
}

/// What a preset fills in: the discovery document and the Mobile Services provider name (the prefix
/// of user ids).
pub fn preset(kind: ProviderKind) -> (Option<&'static str>, &'static str) {
    match kind {
        ProviderKind::Google => (Some("https://accounts.google.com/.well-known/openid-configuration"), "Google"),
        ProviderKind::MicrosoftAccount => (Some("https://login.microsoftonline.com/consumers/v2.0/.well-known/openid-configuration"), "MicrosoftAccount"),
        ProviderKind::Aad => (Some("https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"), "Aad"),
        ProviderKind::Apple => (Some("https://appleid.apple.com/.well-known/openid-configuration"), "Apple"),
        ProviderKind::Facebook => (None, "Facebook"),
        ProviderKind::Oidc => (None, ""),
    }
}

/// The part of a provider's configuration kept as JSON in its row.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The discovery document's URL (none for Facebook).
    pub discovery_url: Option<String>,
    /// Scopes beyond `openid`.
    pub scopes: Vec<String>,
    /// Other accepted audiences.
    pub audiences: Vec<String>,
    /// `aad`: the Entra tenant ids whose users may sign in (empty: any), lower-case.
    #[serde(default)]
    pub entra_tenants: Vec<String>,
    /// The prefix of user ids.
    pub uid_prefix: String,
}

/// A provider's `/login/{name}` name: a letter, then letters, digits or `-`, at most 32, lower-case.
pub fn is_valid_provider_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && b.len() <= 32 && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// A discovery URL: `https://`, or `http://` to a loopback host only (a provider on the same machine).
fn check_discovery_url(url: &str) -> Result<(), ManageError> {
    let bad = || ManageError::BadInput(format!("discovery_url must be an https:// URL (http:// only to 127.0.0.1, ::1 or localhost): {url}"));
    if url.len() > MAX_URL {
        return Err(bad());
    }
    if !url.ends_with("/.well-known/openid-configuration") {
        return Err(ManageError::BadInput(format!("discovery_url must end with /.well-known/openid-configuration: {url}")));
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
    let host = parsed.host_str().ok_or_else(bad)?.trim_matches(|c| c == '[' || c == ']');
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        _ => Err(bad()),
    }
}

fn check_token(what: &str, v: &str, max: usize) -> Result<(), ManageError> {
    if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
        return Err(ManageError::BadInput(format!("{what} must be 1 to {max} printable characters without spaces or quotes: {v:?}")));
    }
    Ok(())
}

/// The record of a provider from what was given, over the stored one if any (whose secret is kept
/// when none is given; an empty one removes it).
pub fn record(key: &IdentityKey, tenant: &str, name: &str, input: ProviderIn, stored: Option<&ProviderRecord>) -> Result<ProviderRecord, ManageError> {
    if !is_valid_provider_name(name) {
        return Err(ManageError::BadInput(format!("A provider name is a letter, then letters, digits or '-', at most 32: {name:?}")));
    }
    let name = name.to_ascii_lowercase();
    let kind = input.kind.unwrap_or_else(|| ProviderKind::parse(&name).unwrap_or(ProviderKind::Oidc));
    let (preset_url, preset_prefix) = preset(kind);
    let discovery_url = match (kind, input.discovery_url) {
        (ProviderKind::Facebook, Some(_)) => return Err(ManageError::BadInput("Facebook has no discovery document: leave discovery_url out.".into())),
        (ProviderKind::Facebook, None) => None,
        (ProviderKind::Oidc, None) => return Err(ManageError::BadInput("An oidc provider needs its discovery_url.".into())),
        (_, Some(url)) => Some(url),
        (_, None) => preset_url.map(str::to_string),
    };
    if let Some(url) = &discovery_url {
        check_discovery_url(url)?;
    }
    check_token("client_id", &input.client_id, MAX_CLIENT_ID)?;
    let scopes = input.scopes.unwrap_or_else(|| match kind {
        ProviderKind::Facebook => vec!["public_profile".into(), "email".into()],
        _ => vec!["profile".into(), "email".into()],
    });
    if scopes.len() > MAX_SCOPES {
        return Err(ManageError::BadInput(format!("At most {MAX_SCOPES} scopes.")));
    }
    for s in &scopes {
        check_token("A scope", s, 64)?;
    }
    if kind == ProviderKind::Facebook && !input.audiences.is_empty() {
        return Err(ManageError::BadInput("A facebook provider accepts the tokens of its own app only: leave audiences out.".into()));
    }
    if input.audiences.len() > MAX_AUDIENCES {
        return Err(ManageError::BadInput(format!("At most {MAX_AUDIENCES} audiences.")));
    }
    for a in &input.audiences {
        check_token("An audience", a, MAX_CLIENT_ID)?;
    }
    let (secret_sealed, secret_hint) = match input.client_secret {
        Some(s) if s.is_empty() => (String::new(), String::new()),
        Some(s) => {
            if s.len() > MAX_SECRET || s.chars().any(char::is_control) {
                return Err(ManageError::BadInput(format!("client_secret must be at most {MAX_SECRET} bytes without control characters.")));
            }
            let hint: String = s.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            (key.seal(tenant, &name, &s), hint)
        }
        None => stored.map(|p| (p.secret_sealed.clone(), p.secret_hint.clone())).unwrap_or_default(),
    };
    let uid_prefix = if kind == ProviderKind::Oidc { name.clone() } else { preset_prefix.to_string() };
    if !input.entra_tenants.is_empty() && kind != ProviderKind::Aad {
        return Err(ManageError::BadInput("entra_tenants is an aad provider's setting.".into()));
    }
    if input.entra_tenants.len() > MAX_AUDIENCES {
        return Err(ManageError::BadInput(format!("At most {MAX_AUDIENCES} Entra tenants.")));
    }
    let entra_tenants: Vec<String> = input.entra_tenants.iter().map(|t| t.trim().to_ascii_lowercase()).collect();
    if let Some(bad) = entra_tenants.iter().find(|t| !login::is_guid(t)) {
        return Err(ManageError::BadInput(format!("An Entra tenant id is a GUID: {bad:?}")));
    }
    let config = ProviderConfig { discovery_url, scopes, audiences: input.audiences, entra_tenants, uid_prefix };
    Ok(ProviderRecord {
        name,
        kind: kind.as_str().into(),
        client_id: input.client_id,
        secret_sealed,
        secret_hint,
        config: serde_json::to_string(&config).map_err(|e| ManageError::Internal(e.to_string()))?,
        updated_at: String::new(),
    })
}

/// A provider as `/manage/v1` and the CLI show it.
pub fn provider_out(p: &ProviderRecord) -> ProviderOut {
    let config: ProviderConfig = serde_json::from_str(&p.config).unwrap_or_default();
    ProviderOut {
        name: p.name.clone(),
        kind: ProviderKind::parse(&p.kind).unwrap_or(ProviderKind::Oidc),
        uid_prefix: config.uid_prefix,
        discovery_url: config.discovery_url,
        client_id: p.client_id.clone(),
        client_secret_set: !p.secret_sealed.is_empty(),
        client_secret_hint: Some(&p.secret_hint).filter(|h| !h.is_empty()).map(|h| format!("…{h}")),
        scopes: config.scopes,
        audiences: config.audiences,
        entra_tenants: config.entra_tenants,
        login_path: format!("/login/{}", p.name),
        updated_at: p.updated_at.clone(),
    }
}

fn internal(e: roost_storage::StorageError) -> ManageError {
    ManageError::Internal(e.to_string())
}

/// The providers of a tenant.
pub async fn list(state: &AppState, tenant: &str) -> Result<Vec<ProviderOut>, ManageError> {
    crate::manage::show_tenant(&state.storage, tenant).await?;
    Ok(state.storage.providers(tenant).await.map_err(internal)?.iter().map(provider_out).collect())
}

/// Creates or replaces a provider.
pub async fn put(state: &AppState, tenant: &str, name: &str, input: ProviderIn) -> Result<ProviderOut, ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    let existing = state.storage.providers(&record.name).await.map_err(internal)?;
    let stored = existing.iter().find(|p| p.name.eq_ignore_ascii_case(name));
    if stored.is_none() && existing.len() >= MAX_PROVIDERS {
        return Err(ManageError::BadInput(format!("A service has at most {MAX_PROVIDERS} identity providers.")));
    }
    let p = self::record(&state.identity_key, &record.name, name, input, stored)?;
    state.storage.put_provider(&record.name, &p).await.map_err(internal)?;
    let saved = state.storage.providers(&record.name).await.map_err(internal)?;
    saved.iter().find(|s| s.name == p.name).map(provider_out).ok_or_else(|| ManageError::Internal("the provider was not stored".into()))
}

/// Removes a provider.
pub async fn remove(state: &AppState, tenant: &str, name: &str) -> Result<(), ManageError> {
    let record = crate::manage::show_tenant(&state.storage, tenant).await?;
    if !state.storage.delete_provider(&record.name, name).await.map_err(internal)? {
        return Err(ManageError::NotFound(format!("Identity provider '{name}'")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> IdentityKey {
        IdentityKey::parse(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_tenant_and_provider_and_key() {
        let k = key();
        let sealed = k.seal("shop", "google", "s3cret-value");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(k.open("shop", "GOOGLE", &sealed).unwrap().expose_secret(), "s3cret-value");
        assert!(k.open("other", "google", &sealed).is_err(), "another tenant's row");
        assert!(k.open("shop", "apple", &sealed).is_err(), "another provider's row");
        assert!(IdentityKey::parse(&"cd".repeat(32)).unwrap().open("shop", "google", &sealed).is_err(), "another key");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(k.open("shop", "google", std::str::from_utf8(&tampered).unwrap()).is_err(), "altered");
        assert_ne!(k.seal("shop", "google", "s3cret-value"), sealed, "a fresh nonce each time");
    }

    #[test]
    fn records_validate_and_keep_or_replace_the_secret() {
        let k = key();
        let given = |v: serde_json::Value| serde_json::from_value::<ProviderIn>(v).unwrap();
        let google =
            record(&k, "shop", "Google", given(serde_json::json!({"client_id": "web.apps.googleusercontent.com", "client_secret": "abcdefgh"})), None).unwrap();
        assert_eq!((google.name.as_str(), google.kind.as_str(), google.secret_hint.as_str()), ("google", "google", "efgh"));
        let out = provider_out(&google);
        assert_eq!(out.uid_prefix, "Google");
        assert_eq!(out.discovery_url.as_deref(), Some("https://accounts.google.com/.well-known/openid-configuration"));
        assert_eq!(out.client_secret_hint.as_deref(), Some("…efgh"));
        // A change without a secret keeps the stored one; an empty one removes it.
        let kept = record(&k, "shop", "google", given(serde_json::json!({"client_id": "other"})), Some(&google)).unwrap();
        assert_eq!(kept.secret_sealed, google.secret_sealed);
        let cleared = record(&k, "shop", "google", given(serde_json::json!({"client_id": "other", "client_secret": ""})), Some(&google)).unwrap();
        assert!(cleared.secret_sealed.is_empty() && !provider_out(&cleared).client_secret_set);
        for (name, v, needle) in [
            ("corp", serde_json::json!({"client_id": "x"}), "needs its discovery_url"),
            ("corp", serde_json::json!({"client_id": "x", "discovery_url": "http://idp.example.com/.well-known/openid-configuration"}), "https://"),
            ("corp", serde_json::json!({"client_id": "x", "discovery_url": "file:///etc/.well-known/openid-configuration"}), "https://"),
            ("corp", serde_json::json!({"client_id": "x", "discovery_url": "https://idp.example/issuer"}), "must end with"),
            ("facebook", serde_json::json!({"client_id": "x", "discovery_url": "https://x.example"}), "no discovery document"),
            ("1bad", serde_json::json!({"client_id": "x"}), "provider name"),
            ("google", serde_json::json!({"client_id": ""}), "client_id"),
            ("google", serde_json::json!({"client_id": "a b"}), "client_id"),
            ("google", serde_json::json!({"client_id": "x", "scopes": ["a b"]}), "scope"),
            ("google", serde_json::json!({"client_id": "x", "client_secret": "x".repeat(2000)}), "client_secret"),
        ] {
            let e = record(&k, "shop", name, given(v.clone()), None).unwrap_err().to_string();
            assert!(e.contains(needle), "{v}: {e}");
        }
        let local = record(
            &k,
            "shop",
            "local",
            given(serde_json::json!({"client_id": "x", "discovery_url": "http://127.0.0.1:9/.well-known/openid-configuration"})),
            None,
        )
        .unwrap();
        assert_eq!(provider_out(&local).uid_prefix, "local");
    }
}
