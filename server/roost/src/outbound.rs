//! Outbound HTTP for scripts (`require('request')`) and for a tenant's identity providers: loopback, private, link-local and other
//! non-public addresses are refused unless the tenant's `outbound_allow` names the host, and the
//! connection goes to the address that was checked (no second DNS lookup to rebind).

use roost_scripts::host::HttpRequest;
use roost_scripts::HostError;
use roost_storage::Tenant;
use serde_json::{json, Value as Json};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The largest response body a script may fetch.
const MAX_BODY: usize = 16 << 20;

fn fail(message: String) -> HostError {
    HostError::new(500, message)
}

/// True for addresses a tenant may not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xFE) == 18) // 198.18.0.0/15, benchmarking
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return true;
            }
            // Forms that carry an IPv4 address are judged by it: a route to 127.0.0.1 through a
            // NAT64 gateway or a 6to4 relay is still a route to 127.0.0.1.
            if let Some(v4) = embedded_ipv4(v6) {
                return v4.iter().any(|a| is_private(IpAddr::V4(*a)));
            }
            let s = v6.segments();
            v6.is_multicast()
                || (s[0] & 0xFE00) == 0xFC00 // fc00::/7, unique local
                || (s[0] & 0xFFC0) == 0xFE80 // fe80::/10, link-local
                || (s[0] & 0xFFC0) == 0xFEC0 // fec0::/10, site-local (deprecated, still routed by some)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64, discard
        }
    }
}

/// The IPv4 addresses an IPv6 address embeds: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96` and the local-use
/// `64:ff9b:1::/48`), 6to4 (`2002:AABB:CCDD::/48`) and Teredo (`2001:0::/32`: the server's address,
/// and the client's, stored inverted). `None` for addresses of no such form.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<Vec<std::net::Ipv4Addr>> {
    use std::net::Ipv4Addr;
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    let last = v4(s[6], s[7]);
    if let Some(a) = v6.to_ipv4_mapped() {
        return Some(vec![a]);
    }
    if s[..4] == [0, 0, 0, 0] && s[5] == 0 && (s[4] == 0xffff || s[4] == 0) {
        return Some(vec![last]);
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
        return Some(vec![last]);
    }
    if s[0] == 0x2002 {
        return Some(vec![v4(s[1], s[2])]);
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(vec![v4(s[2], s[3]), v4(!s[6], !s[7])]);
    }
    None
}

/// The address a tenant's outbound request to `host:port` connects to: the first the name resolves
/// to that is public, or any of them when the tenant's `outbound_allow` names the host (an admin's
/// setting). The caller connects to exactly this address (no second lookup to rebind).
pub async fn checked_address(tenant: &Tenant, host: &str, port: u16) -> Result<SocketAddr, String> {
    let allowed = tenant.record.settings.outbound_allow.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&format!("{host}:{port}")));
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("getaddrinfo ENOTFOUND {host}: {e}"))?.collect();
    match addrs.iter().find(|a| allowed || !is_private(a.ip())) {
        Some(a) => Ok(*a),
        None => Err(format!(
            "connect EACCES {host}: the address is loopback or private, which tenants may not reach unless the service's outbound_allow setting names '{host}'"
        )),
    }
}

/// Runs one `http.request` host call.
pub async fn request(tenant: &Tenant, args: HttpRequest) -> Result<Json, HostError> {
    let url_text = args.url.as_str();
    let url = reqwest::Url::parse(url_text).map_err(|e| fail(format!("Invalid URI \"{url_text}\": {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(fail(format!("Invalid protocol: {}:", url.scheme())));
    }
    let host = url.host_str().ok_or_else(|| fail(format!("Invalid URI \"{url_text}\"")))?.trim_matches(|c| c == '[' || c == ']').to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = checked_address(tenant, &host, port).await.map_err(fail)?;
    let timeout = args.timeout_ms.unwrap_or(30_000).clamp(1, 120_000);
    let client = reqwest::Client::builder()
        .resolve(&host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(timeout))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let method = reqwest::Method::from_bytes(args.method.as_bytes()).map_err(|e| fail(e.to_string()))?;
    let mut req = client.request(method, url);
    for (k, v) in &args.headers {
        if let Some(v) = v.as_str() {
            req = req.header(k.as_str(), v);
        }
    }
    if let Some(b) = args.body {
        req = req.body(b);
    }
    let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
    let status = resp.status().as_u16();
    let headers: serde_json::Map<String, Json> =
        resp.headers().iter().filter_map(|(k, v)| Some((k.as_str().to_string(), Json::String(v.to_str().ok()?.to_string())))).collect();
    // Bodies are capped while they arrive, so a script cannot pull unbounded data into the host.
    let mut resp = resp;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(fail("The response body is larger than 16 MiB.".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    use base64::Engine as _;
    Ok(json!({
        "status": status,
        "headers": headers,
        "body": String::from_utf8_lossy(&bytes),
        "bodyBase64": base64::engine::general_purpose::STANDARD.encode(&bytes),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_ipv4_forms_are_judged_by_their_ipv4_address() {
        let private = |s: &str| is_private(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")));
        for p in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "::",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:0:7f00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:7f00:1::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(private(p), "{p} must be refused");
        }
        for p in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"] {
            assert!(!private(p), "{p} is public");
        }
    }
}
