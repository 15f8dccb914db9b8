//! CORS for tenant endpoints (protocol.md §1.5, R7): a per-tenant list of host patterns.

use axum::http::{header, HeaderMap, HeaderValue};

/// True if `host` matches `pattern`: case-insensitive, the first `*` matches `[a-z0-9-.]*`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == h,
        Some((pre, post)) => {
            h.len() >= pre.len() + post.len()
                && h.starts_with(pre)
                && h.ends_with(post)
                && h[pre.len()..h.len() - post.len()].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    }
}

/// The hostname of an acceptable origin (`http:`, `https:` or `ms-appx-web:`, no path beyond `/`).
fn origin_host(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https" | "ms-appx-web") {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") || authority.is_empty() || authority.contains('@') {
        return None;
    }
    // Strip the port (IPv6 literals keep their brackets).
    let host = if authority.starts_with('[') { authority.split(']').next().map(|h| &authority[..h.len() + 1])? } else { authority.split(':').next()? };
    Some(host)
}

/// True if `origin` is allowed by the tenant's patterns.
pub fn origin_allowed(patterns: &[String], origin: &str) -> bool {
    if origin == "null" {
        return patterns.iter().any(|p| p.eq_ignore_ascii_case("null"));
    }
    match origin_host(origin) {
        Some(host) => patterns.iter().any(|p| host_matches(p, host)),
        None => false,
    }
}

/// The CORS headers for a request (empty when the origin is absent or not allowed).
pub fn headers_for(patterns: &[String], req: &HeaderMap, preflight: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    let Some(origin) = req.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return h };
    if !origin_allowed(patterns, origin) {
        return h;
    }
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if let Some(requested) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()) {
        let ok = !requested.is_empty()
            && requested.len() <= 500
            && requested.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b',' | b' ' | b'\t' | b'\r' | b'\n'));
        if ok {
            if let Ok(v) = HeaderValue::from_str(requested) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
    }
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag, Location, x-zumo-version"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, PUT, PATCH, POST, DELETE, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("300"));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_origins() {
        let p = vec!["localhost".to_string(), "*.example.com".to_string(), "null".to_string()];
        assert!(origin_allowed(&p, "http://localhost:3000"));
        assert!(origin_allowed(&p, "https://app.example.com"));
        assert!(origin_allowed(&p, "https://a.b.example.com/"));
        assert!(origin_allowed(&p, "null"));
        assert!(!origin_allowed(&p, "https://example.org"));
        assert!(!origin_allowed(&p, "https://app.example.com/path"));
        assert!(!origin_allowed(&p, "ftp://localhost"));
        assert!(!origin_allowed(&p, "https://evil_host.example.com"));
        assert!(host_matches("a*b*c", "axxb*c"));
        assert!(!host_matches("a*b*c", "axxbyc"));
    }
}
