//! The push outbox's worker: claims due notifications (`roost_storage::push`), delivers them with
//! bounded parallelism (per tenant and in all), and records each outcome in the same transaction
//! that removes or reschedules its row. Nothing is lost on a crash: a row leaves the outbox only
//! once its outcome is stored, so a notification the push service accepted just before a crash may
//! be sent twice, never not at all.
//!
//! Outcomes: 2xx delivered; 404/410 the registration is gone (pruned with it); 429, 5xx or no answer
//! retried with exponential backoff and jitter (honouring `Retry-After`), until its time to live runs
//! out (expired) or [`MAX_ATTEMPTS`] (failed); any other answer failed. Failures go to the tenant's
//! logs.
//!
//! Web Push (RFC 8030/8291/8292): the payload encrypted (`aes128gcm`, [`encrypt`]); the VAPID
//! token (ES256, `aud` the endpoint's origin, port included, valid 12 hours, reused for an origin
//! for 11) signed here with `jwt-simple`, since the crate's own leaves a non-default port out of `aud`; `TTL`, `Urgency` and
//! `Topic` headers. Endpoints are reached under the tenant's outbound address rules: a client per
//! tenant whose resolver refuses loopback and private addresses unless the tenant's admin-set
//! `outbound_allow` names the host, and the same check for endpoints given as addresses.

use crate::AppState;
use futures::StreamExt as _;
use roost_api::LogLevel;
use roost_storage::push::{OutboxRow, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use web_push_native::jwt_simple::prelude::*;

/// Attempts before a notification fails.
pub const MAX_ATTEMPTS: i64 = 12;
/// Notifications claimed at once.
const BATCH: i64 = 512;
/// Deliveries in flight on this node.
const PARALLEL: usize = 64;
/// Outcomes stored in one transaction at most.
const OUTCOMES_PER_COMMIT: usize = 256;
/// Deliveries in flight for one tenant.
const PER_TENANT: usize = 16;
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait before a retry.
const MAX_BACKOFF_MS: i64 = 15 * 60 * 1000;
/// VAPID headers kept at most (one per tenant and push service).
const VAPID_CACHE: usize = 4096;
/// How long a VAPID token is valid (RFC 8292: at most 24 hours).
const VAPID_VALID: Duration = Duration::from_secs(12 * 3600);

/// What the worker shares between deliveries: HTTP clients per tenant, and a wake-up for new sends.
#[derive(Default)]
pub struct Outbox {
    /// Woken when a send is queued.
    pub wake: tokio::sync::Notify,
    clients: Mutex<HashMap<String, (Vec<String>, reqwest::Client)>>,
    tenants: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// VAPID headers by (tenant, push service origin).
    vapid: Mutex<HashMap<(String, String), VapidHeader>>,
    /// The native services' tokens and clients.
    pub(crate) native: super::native::Clients,
}

/// A signed VAPID header, for the public key it was signed with, until its renewal time (epoch ms).
struct VapidHeader {
    public_key: String,
    header: String,
    renew_at: i64,
}

/// A tenant ready to deliver for: its record and its keys.
struct Sender {
    tenant: Arc<roost_storage::Tenant>,
    vapid: Option<Arc<ES256KeyPair>>,
    fcm: Option<Arc<super::native::Fcm>>,
    apns: Option<Arc<super::native::Apns>>,
}

/// What a push service answered one notification.
#[derive(Debug)]
pub enum Answer {
    /// Accepted.
    Delivered,
    /// The registration is gone (Web Push 404/410, FCM `UNREGISTERED`, APNs 410 or `BadDeviceToken`).
    Gone,
    /// Try again (429, 5xx, no answer), no sooner than `Retry-After` seconds if given.
    Retry(Option<i64>, String),
    /// Refused for good.
    Refused(String),
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The worker loop (a managed task): claims and delivers until the server stops.
pub async fn run(app: Weak<crate::App>, stop: CancellationToken) {
    if let Some(state) = app.upgrade().map(AppState) {
        // SQLite has one server per data folder: every claim left is this folder's crashed run's.
        if state.storage.dialect() == roost_odata::sql::Dialect::Sqlite {
            if let Err(e) = state.storage.release_push(None).await {
                tracing::warn!(error.cause = %e, "Could not release the push outbox's claims");
            }
        }
    }
    loop {
        let Some(state) = app.upgrade().map(AppState) else { return };
        let worked = match state.storage.claim_push(now_ms(), now_ms() + state.push_claim_lease_ms, BATCH).await {
            Ok(rows) if !rows.is_empty() => {
                deliver_all(&state, rows, &stop).await;
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error.cause = %e, "Could not claim push notifications");
                false
            }
        };
        if stop.is_cancelled() {
            return;
        }
        if !worked {
            let wake = async { state.outbox.wake.notified().await };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// Delivers a claimed batch; once the server is stopping, the rows not yet started are given back
/// (another node, or the next start, sends them).
async fn deliver_all(state: &AppState, rows: Vec<OutboxRow>, stop: &CancellationToken) {
    // The tenants' keys and records, once per batch.
    let mut tenants: HashMap<String, Option<Arc<Sender>>> = HashMap::new();
    for row in &rows {
        if !tenants.contains_key(&row.tenant) {
            let loaded = load_tenant(state, &row.tenant).await;
            tenants.insert(row.tenant.clone(), loaded);
        }
    }
    // Outcomes are stored by one writer in group commits: whatever finished while the last commit
    // ran goes into the next (at most `OUTCOMES_PER_COMMIT`). A crash loses at most those not yet
    // committed, which are then sent again: at most twice, never not at all.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(OutboxRow, Outcome)>();
    let writer = async {
        let mut done = Vec::with_capacity(OUTCOMES_PER_COMMIT);
        while done_rx.recv_many(&mut done, OUTCOMES_PER_COMMIT).await > 0 {
            if let Err(e) = state.storage.finish_push_many(&done).await {
                tracing::warn!(error.cause = %e, count = done.len(), "Could not record push outcomes (the notifications will be tried again)");
            } else {
                for (row, outcome) in &done {
                    if let Some(m) = state.metrics.tenant(&row.tenant) {
                        // The order of monitor::PUSH_OUTCOMES.
                        let i = match outcome {
                            Outcome::Delivered => 0,
                            Outcome::Retry(_) => 1,
                            Outcome::Expired => 2,
                            Outcome::Failed => 3,
                            Outcome::Pruned => 4,
                        };
                        m.push_outcome(i, 1);
                    }
                }
            }
            done.clear();
        }
    };
    let deliveries = async move {
        let done_tx = &done_tx;
        futures::stream::iter(rows)
            .for_each_concurrent(PARALLEL, |row| {
                let ctx = tenants.get(&row.tenant).cloned().flatten();
                async move {
                    let limit = state
                        .outbox
                        .tenants
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(row.tenant.clone())
                        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_TENANT)))
                        .clone();
                    let _slot = limit.acquire_owned().await;
                    if stop.is_cancelled() {
                        if let Err(e) = state.storage.release_push(Some(&[row.id])).await {
                            tracing::warn!(error.cause = %e, "Could not give back a push claim (it ends with its lease)");
                        }
                        return;
                    }
                    let outcome = match &ctx {
                        None => Outcome::Failed,
                        Some(sender) => attempt(state, sender, &row).await,
                    };
                    let _ = done_tx.send((row, outcome));
                }
            })
            .await;
    };
    tokio::join!(deliveries, writer);
}

async fn load_tenant(state: &AppState, name: &str) -> Option<Arc<Sender>> {
    let tenant = state.storage.tenant(name).await.ok().flatten()?;
    let vapid = match super::vapid(state, name, false).await {
        Ok(v) => {
            use secrecy::ExposeSecret as _;
            let hex = state.identity_key.open(name, super::VAPID_SEAL, &v.vapid_private).ok();
            hex.and_then(|hex| {
                let hex = hex.expose_secret();
                let bytes: Vec<u8> = (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
                ES256KeyPair::from_bytes(&bytes).ok().map(Arc::new)
            })
        }
        Err(_) => None,
    };
    let (fcm, apns) = super::native::open(state, name).await;
    Some(Arc::new(Sender { tenant, vapid, fcm, apns }))
}

/// One delivery attempt and what it comes to.
async fn attempt(state: &AppState, sender: &Sender, row: &OutboxRow) -> Outcome {
    let now = now_ms();
    if now >= row.expires_at {
        return Outcome::Expired;
    }
    let name = &sender.tenant.record.name;
    let log = |m: String| state.logs.write(name, LogLevel::Error, "/push", &m);
    let answer = match (row.platform.as_str(), &sender.vapid, &sender.fcm, &sender.apns) {
        ("webpush", Some(key), _, _) => webpush(state, &sender.tenant, key, row).await,
        ("gcm" | "fcm", _, Some(fcm), _) => super::native::fcm_send(state, name, fcm, row).await,
        ("apns", _, _, Some(apns)) => super::native::apns_send(state, name, apns, row).await,
        (p, ..) => Answer::Refused(format!("the service has no {} credentials (or they do not open with this server's key)", p.to_ascii_uppercase())),
    };
    match answer {
        Answer::Delivered => Outcome::Delivered,
        Answer::Gone => Outcome::Pruned,
        Answer::Retry(after, why) => retry(row, now, after, &why, &log),
        Answer::Refused(why) => {
            log(format!("Push to {} registration {} failed: {why}", row.platform, row.registration_id));
            Outcome::Failed
        }
    }
}

/// One Web Push delivery.
async fn webpush(state: &AppState, tenant: &roost_storage::Tenant, key: &ES256KeyPair, row: &OutboxRow) -> Answer {
    let (client, req) = match webpush_request(state, tenant, key, row) {
        Ok(r) => r,
        Err(m) => return Answer::Refused(m),
    };
    let resp = match tokio::time::timeout(TIMEOUT, client.execute(req)).await {
        Err(_) => return Answer::Retry(None, "no answer in 15 s".into()),
        Ok(Err(e)) => return Answer::Retry(None, e.to_string()),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    match status.as_u16() {
        200..=299 => Answer::Delivered,
        404 | 410 => Answer::Gone,
        429 | 500..=599 => {
            let after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
            Answer::Retry(after, format!("HTTP {status}"))
        }
        _ => {
            let body = resp.text().await.unwrap_or_default();
            Answer::Refused(format!("the push service refused it: HTTP {status} {}", body.chars().take(200).collect::<String>()))
        }
    }
}

/// The next attempt's time: 1 s × 2^attempts (at most 15 minutes), ±20 % jitter, and no sooner than
/// the push service's `Retry-After`; or the end, past the time to live or the attempts.
fn retry(row: &OutboxRow, now: i64, retry_after: Option<i64>, why: &str, log: &dyn Fn(String)) -> Outcome {
    if row.attempts + 1 >= MAX_ATTEMPTS {
        log(format!("Push to registration {} failed after {MAX_ATTEMPTS} attempts: {why}", row.registration_id));
        return Outcome::Failed;
    }
    let base = (1000i64 << row.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
    let jitter = (base as f64 * (rand::random::<f64>() * 0.4 - 0.2)) as i64;
    let wait = (base + jitter).max(retry_after.unwrap_or(0).clamp(0, 3600) * 1000);
    if now + wait >= row.expires_at {
        return Outcome::Expired;
    }
    Outcome::Retry(now + wait)
}

/// The encrypted, signed request for a Web Push notification, and the tenant's client to send it.
fn webpush_request(
    state: &AppState,
    tenant: &roost_storage::Tenant,
    key: &ES256KeyPair,
    row: &OutboxRow,
) -> Result<(reqwest::Client, reqwest::Request), String> {
    let keys: serde_json::Value = serde_json::from_str(&row.keys).map_err(|_| "the subscription's keys are unreadable".to_string())?;
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| "the subscription's keys are unreadable".to_string())
    };
    let ua_public = b64(keys["p256dh"].as_str().unwrap_or_default())?;
    let auth = b64(keys["auth"].as_str().unwrap_or_default())?;
    if auth.len() != 16 {
        return Err("the subscription's auth secret is not 16 bytes".into());
    }
    let url = reqwest::Url::parse(&row.endpoint).map_err(|e| format!("the endpoint is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default().trim_matches(|c| c == '[' || c == ']').to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let allow = &tenant.record.settings.outbound_allow;
    let admin_allowed = allow.iter().any(|a| a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(&format!("{host}:{port}")));
    match url.scheme() {
        "https" => {}
        "http" if admin_allowed => {}
        s => return Err(format!("endpoints must be https ({s}:// is allowed only to hosts the service's outbound_allow names)")),
    }
    let names_other_port = allow.iter().any(|a| a.split_once(':').is_some_and(|(h, _)| h.eq_ignore_ascii_case(&host)));
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        if crate::outbound::is_private(ip) && !admin_allowed {
            return Err(format!("the endpoint {host} is a loopback or private address, which the service's outbound_allow does not name"));
        }
    } else if names_other_port && !admin_allowed {
        return Err(format!("the service's outbound_allow names {host} with another port"));
    }
    let body = encrypt(row.payload.as_bytes(), &ua_public, &auth)?;
    let origin = match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    let vapid = vapid_header(state, &tenant.record.name, key, origin)?;
    let client = client_for(state, &tenant.record.name, allow)?;
    let mut req = client
        .post(url)
        .header("authorization", vapid)
        .header("ttl", row.ttl.to_string())
        .header("content-encoding", "aes128gcm")
        .header("content-type", "application/octet-stream")
        .body(body);
    if !row.urgency.is_empty() {
        req = req.header("urgency", &row.urgency);
    }
    if !row.topic.is_empty() {
        req = req.header("topic", &row.topic);
    }
    let req = req.build().map_err(|e| e.to_string())?;
    Ok((client, req))
}

/// A Web Push message (RFC 8291): an ephemeral P-256 key agreed with the subscription's, the input
/// keying material `HKDF(auth, ecdh, "WebPush: info" 0x00 ua_public as_public)`, and the payload in
/// one `aes128gcm` record (RFC 8188) with a random salt and the ephemeral public key as its key id.
/// Written here rather than with `web_push_native::encrypt`, which does the same with p256's
/// arithmetic: ring's P-256 makes the key and the agreement in a fifth of the time, and they were
/// most of a delivery's CPU. The record itself is `ece-native`'s, as in web-push-native.
fn encrypt(message: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>, String> {
    use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
    use ring::rand::{SecureRandom as _, SystemRandom};
    let rng = SystemRandom::new();
    let secret = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| "no randomness for a push key".to_string())?;
    let as_public = secret.compute_public_key().map_err(|_| "no push key".to_string())?;
    let ikm = agree_ephemeral(secret, &UnparsedPublicKey::new(&ECDH_P256, ua_public), |shared| {
        let mut info = Vec::with_capacity(14 + 2 * 65);
        info.extend_from_slice(b"WebPush: info\0");
        info.extend_from_slice(ua_public);
        info.extend_from_slice(as_public.as_ref());
        let mut okm = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(auth), shared).expand(&info, &mut okm).map(|()| okm)
    })
    .map_err(|_| "the subscription's p256dh is not a P-256 public key".to_string())?
    .map_err(|_| "no push key".to_string())?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| "no randomness for a push salt".to_string())?;
    let size = u32::try_from(message.len() + 17).map_err(|_| "the payload is too large".to_string())?;
    ece_native::encrypt(ikm, salt, as_public.as_ref(), std::iter::once(message.to_vec()), size).map_err(|e| format!("{e:?}"))
}

/// The `Authorization` header for a push service's origin: a VAPID token signed once and used for
/// every notification to that origin until an hour before it expires (RFC 8292 lets a token be
/// reused; signing one per message was a third of a delivery's CPU). A rotated key signs anew.
fn vapid_header(state: &AppState, tenant: &str, key: &ES256KeyPair, origin: String) -> Result<String, String> {
    use base64::Engine as _;
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
    let now = now_ms();
    let cache_key = (tenant.to_string(), origin);
    {
        let cache = state.outbox.vapid.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(&cache_key) {
            if v.public_key == k && now < v.renew_at {
                return Ok(v.header.clone());
            }
        }
    }
    let claims = Claims::create(VAPID_VALID.into()).with_audience(cache_key.1.clone()).with_subject(state.push_contact.clone());
    let token = key.sign(claims).map_err(|e| e.to_string())?;
    let header = format!("vapid t={token}, k={k}");
    let mut cache = state.outbox.vapid.lock().unwrap_or_else(|e| e.into_inner());
    // Endpoints are the tenants' to choose: the cache stays bounded whatever origins they name.
    if cache.len() >= VAPID_CACHE {
        cache.clear();
    }
    let renew_at = now + VAPID_VALID.as_millis() as i64 - 3_600_000;
    cache.insert(cache_key, VapidHeader { public_key: k, header: header.clone(), renew_at });
    Ok(header)
}

/// The tenant's HTTP client (kept while its `outbound_allow` stays the same).
fn client_for(state: &AppState, tenant: &str, allow: &[String]) -> Result<reqwest::Client, String> {
    let mut clients = state.outbox.clients.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((a, c)) = clients.get(tenant) {
        if a == allow {
            return Ok(c.clone());
        }
    }
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(TenantResolver { allow: allow.to_vec() }))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .pool_max_idle_per_host(PER_TENANT)
        .build()
        .map_err(|e| e.to_string())?;
    clients.insert(tenant.to_string(), (allow.to_vec(), client.clone()));
    Ok(client)
}

/// Name resolution under a tenant's address rules: loopback and private addresses only for hosts
/// its `outbound_allow` names.
struct TenantResolver {
    allow: Vec<String>,
}

impl reqwest::dns::Resolve for TenantResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allowed = self.allow.iter().any(|a| a.eq_ignore_ascii_case(&host) || a.split_once(':').is_some_and(|(h, _)| h.eq_ignore_ascii_case(&host)));
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<std::net::SocketAddr> = addrs.into_iter().filter(|a| allowed || !crate::outbound::is_private(a.ip())).collect();
            if ok.is_empty() {
                return Err(format!("{host} resolves only to loopback or private addresses, which the service's outbound_allow does not name").into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;

    /// What [`super::encrypt`] writes, web-push-native's own decryption (p256 arithmetic) reads: the
    /// payload back, with a fresh key and salt each time. The receivers of the API tests decrypt it a
    /// third way (Node's http_ece).
    #[test]
    fn messages_decrypt_with_the_subscriptions_key() {
        let ua = web_push_native::p256::SecretKey::random(&mut rand::rngs::OsRng);
        let ua_public = ua.public_key().to_encoded_point(false);
        let auth: [u8; 16] = rand::random();
        let message = "{\"title\":\"Grüße\",\"n\":1}".repeat(20);
        let one = super::encrypt(message.as_bytes(), ua_public.as_bytes(), &auth).expect("encrypt");
        let two = super::encrypt(message.as_bytes(), ua_public.as_bytes(), &auth).expect("encrypt");
        assert_ne!(one, two, "a key and a salt of its own per message");
        for m in [one, two] {
            let plain = web_push_native::decrypt(m, &ua, &web_push_native::Auth::clone_from_slice(&auth)).expect("decrypts");
            assert_eq!(plain, message.as_bytes());
        }
        let wrong_auth: [u8; 16] = rand::random();
        let m = super::encrypt(message.as_bytes(), ua_public.as_bytes(), &auth).expect("encrypt");
        assert!(web_push_native::decrypt(m, &ua, &web_push_native::Auth::clone_from_slice(&wrong_auth)).is_err());
        assert!(super::encrypt(b"x", &[4u8; 65], &auth).is_err(), "a point off the curve is refused");
    }
}
