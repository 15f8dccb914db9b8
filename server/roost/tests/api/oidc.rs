//! A real OpenID provider for the identity tests: `tests/oidc/provider.mjs` (the npm package
//! `oidc-provider`, installed there by `scripts/test`) in a Node process on 127.0.0.1, and a browser's
//! part of its sign-in (its development login and consent pages) driven over HTTP.

use serde_json::{json, Value};
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

pub struct OidcProvider {
    pub issuer: String,
    pub port: u16,
    clients: Value,
    child: Child,
}

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

fn spawn(port: u16, clients: &Value) -> (Child, String) {
    assert!(
        dir().join("node_modules/oidc-provider").is_dir(),
        "tests/oidc/node_modules is missing: run `npm ci` in server/roost/tests/oidc (scripts/test does)"
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .arg(json!({"port": port, "clients": clients}).to_string())
        .current_dir(dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node (Node.js) runs the OpenID provider");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("the provider's first line");
    // The provider writes more later (its interactions): a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("the provider did not start ({e}): {line:?}"));
    (child, v["issuer"].as_str().expect("issuer").to_string())
}

impl OidcProvider {
    /// Starts a provider with these clients (`[{client_id, client_secret, redirect_uris}]`).
    pub fn start(clients: Value) -> Self {
        let (child, issuer) = spawn(0, &clients);
        let port = issuer.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        OidcProvider { issuer, port, clients, child }
    }

    /// Restarts it on the same port with a new signing key (key rotation).
    pub fn rotate_key(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, issuer) = spawn(self.port, &self.clients);
        assert_eq!(issuer, self.issuer);
        self.child = child;
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// A crafted token: `mode` is `rs256` (the provider's key), `none`, `hs256-public` (HMAC keyed
    /// with the provider's public key) or `foreign` (a key it never published).
    pub async fn sign(&self, claims: Value, mode: &str) -> String {
        let r = reqwest::Client::new().post(format!("{}/__test/sign", self.issuer)).json(&json!({"claims": claims, "mode": mode})).send().await.expect("sign");
        r.json::<Value>().await.expect("json")["jwt"].as_str().expect("jwt").to_string()
    }

    /// A browser at the provider: from its authorization URL, signs in as `login` and consents, and
    /// returns where the provider sends the browser back (the redirect URI with the code and state).
    pub async fn sign_in(&self, authorize_url: &str, login: &str) -> String {
        let browser = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let mut next = (authorize_url.to_string(), None::<String>);
        for _ in 0..12 {
            let rb = match &next.1 {
                Some(form) => browser.post(&next.0).header("content-type", "application/x-www-form-urlencoded").body(form.clone()),
                None => browser.get(&next.0),
            };
            let r = rb.send().await.expect("provider");
            if let Some(loc) = r.headers().get("location").and_then(|l| l.to_str().ok()) {
                let url = reqwest::Url::parse(&next.0).expect("url").join(loc).expect("location").to_string();
                if !url.starts_with(&self.issuer) {
                    return url;
                }
                next = (url, None);
                continue;
            }
            let page = r.text().await.expect("page");
            let grab = |pattern: &str| {
                let start = page.find(pattern).unwrap_or_else(|| panic!("no {pattern} in the provider's page: {page}")) + pattern.len();
                page[start..page[start..].find('"').expect("quote") + start].to_string()
            };
            let action = grab("action=\"");
            let prompt = grab("name=\"prompt\" value=\"");
            next = (action, Some(format!("prompt={prompt}&login={login}&password=any")));
        }
        panic!("the provider never sent the browser back")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Facebook Login receiver (`tests/oidc/facebook.mjs`): Facebook's OAuth dialog and the Graph
/// API calls a server makes, on 127.0.0.1, for apps `[{app_id, app_secret, redirect_uris}]`.
pub struct FacebookReceiver {
    pub base: String,
    pub port: u16,
    child: Child,
}

impl FacebookReceiver {
    pub fn start(apps: Value) -> Self {
        let (child, v) = spawn_node("facebook.mjs", json!({"port": 0, "apps": apps}));
        let base = v["base"].as_str().expect("base").to_string();
        let port = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        FacebookReceiver { base, port, child }
    }

    /// The dialog and Graph API addresses Roost is configured with (Graph API version v21.0).
    pub fn dialog_url(&self) -> String {
        format!("{}/v21.0/dialog/oauth", self.base)
    }
    pub fn graph_url(&self) -> String {
        format!("{}/v21.0", self.base)
    }

    /// The user access token an app's native SDK holds for `login`, and the person's app-scoped id.
    pub async fn sdk_token(&self, app_id: &str, login: &str) -> (String, String) {
        let r =
            reqwest::Client::new().post(format!("{}/__test/token", self.base)).json(&json!({"app_id": app_id, "login": login})).send().await.expect("token");
        let v: Value = r.json().await.expect("json");
        (v["access_token"].as_str().expect("access_token").to_string(), v["user_id"].as_str().expect("user_id").to_string())
    }

    /// Registers an app (or replaces one) with its redirect URIs.
    pub async fn register(&self, app: Value) {
        let r = reqwest::Client::new().post(format!("{}/__test/apps", self.base)).json(&app).send().await.expect("register");
        assert!(r.status().is_success());
    }

    /// Requests the receiver answered, by path (version prefix removed).
    pub async fn calls(&self) -> Value {
        reqwest::get(format!("{}/__test/calls", self.base)).await.expect("calls").json().await.expect("json")
    }

    /// A browser at the dialog: signs in as `login` and returns where Facebook sends it back (the
    /// fragment `#_=_` Facebook adds dropped, as a browser does not send it).
    pub async fn sign_in(&self, authorize_url: &str, login: &str) -> String {
        let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let page = browser.get(authorize_url).send().await.expect("dialog");
        assert_eq!(page.status(), 200, "the dialog refused {authorize_url}");
        let page = page.text().await.expect("page");
        let start = page.find("name=\"request\" value=\"").expect("the login form") + 22;
        let request = &page[start..start + page[start..].find('"').expect("quote")];
        let r = browser
            .post(format!("{}/dialog/oauth/confirm", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("request={request}&login={login}"))
            .send()
            .await
            .expect("confirm");
        let back = r.headers().get("location").and_then(|l| l.to_str().ok()).expect("a redirect back").to_string();
        back.split('#').next().unwrap_or_default().to_string()
    }
}

impl Drop for FacebookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tests/oidc/<script>` with one JSON argument; the child and the first line it prints.
fn spawn_node(script: &str, arg: Value) -> (Child, Value) {
    assert!(dir().join("node_modules/jose").is_dir(), "tests/oidc/node_modules is missing: run `npm ci` in server/roost/tests/oidc (scripts/test does)");
    let mut child = Command::new("node")
        .arg(script)
        .arg(arg.to_string())
        .current_dir(dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("node (Node.js) runs {script}: {e}"));
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("the first line");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{script} did not start ({e}): {line:?}"));
    (child, v)
}

/// The Web Push receiver (`tests/oidc/webpush.mjs`): a push service on 127.0.0.1 that verifies
/// VAPID and decrypts each message with the subscription's private key.
pub struct WebPushReceiver {
    pub base: String,
    pub port: u16,
    child: Child,
}

impl WebPushReceiver {
    pub fn start() -> Self {
        let (child, v) = spawn_node("webpush.mjs", json!({"port": 0}));
        let base = v["base"].as_str().expect("base").to_string();
        let port = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        WebPushReceiver { base, port, child }
    }

    /// A subscription (`{endpoint, keys}`), answering as `behaviour` says (`ok`, `gone`, `flaky`).
    pub async fn subscribe(&self, behaviour: Value) -> Value {
        let r = reqwest::Client::new().post(format!("{}/__test/subscribe", self.base)).json(&behaviour).send().await.expect("subscribe");
        r.json().await.expect("json")
    }

    /// Every message accepted so far.
    pub async fn messages(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/__test/messages", self.base)).await.expect("messages").json().await.expect("json");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Requests by status, and refusals by reason.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__test/stats", self.base)).await.expect("stats").json().await.expect("json")
    }
}

impl Drop for WebPushReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The native push receivers (`tests/oidc/native.mjs`): FCM HTTP v1 with its OAuth token endpoint,
/// and APNs over HTTP/2, verifying the service-account assertion and the ES256 provider token.
pub struct NativeReceiver {
    /// The FCM (and OAuth, and test) base URL.
    pub fcm: String,
    /// The APNs base URL (HTTP/2 without TLS).
    pub apns: String,
    /// The service account's key file (JSON text).
    pub service_account: String,
    /// The APNs .p8 key.
    pub apns_key: String,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
    child: Child,
}

impl NativeReceiver {
    pub fn start() -> Self {
        let (child, v) = spawn_node("native.mjs", json!({}));
        let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
        NativeReceiver {
            fcm: s("fcm"),
            apns: s("apns"),
            service_account: s("serviceAccount"),
            apns_key: s("apnsKey"),
            key_id: s("keyId"),
            team_id: s("teamId"),
            topic: s("topic"),
            child,
        }
    }

    /// Points a server's native push settings at this receiver.
    pub fn configure(&self, c: &mut roost::Config) {
        c.push_fcm_url = self.fcm.clone();
        c.push_oauth_token_url = format!("{}/token", self.fcm);
        c.push_apns_url = self.apns.clone();
        c.push_apns_sandbox_url = self.apns.clone();
    }

    /// Every message accepted so far.
    pub async fn messages(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/__test/messages", self.fcm)).await.expect("messages").json().await.expect("json");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Answers by service and status, token requests, refusals by reason.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__test/stats", self.fcm)).await.expect("stats").json().await.expect("json")
    }
}

impl Drop for NativeReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
