//! `push.send` and its platform forms (protocol.md §7.1, §7.3): which registrations a send reaches
//! (tags and tag expressions), what each receives (Notification Hubs template expressions), and the
//! send committed to the outbox before the script hears `success`.
//!
//! - `push.send(tags, props)` (a template send) reaches template registrations, each receiving its
//!   template rendered with `props`, and Web Push registrations without a template, which receive
//!   `props` as JSON (a Roost extension: browsers have no Notification Hubs template of their own).
//! - `push.webpush.send`, `push.gcm.send`, `push.apns.send` reach that platform's registrations
//!   without a template, with the payload as given (an object as JSON).
//! - `tags`: `null` (every registration), one tag, an array (any of them), or an expression of tags
//!   with `&&`, `||`, `!` and parentheses (at most 20 tags, as Notification Hubs).

use roost_scripts::host::{HostError, PushSend};
use roost_storage::push::{OutboxRow, RegistrationRecord, SendRecord};
use serde_json::{json, Map, Value as Json};

/// The largest Web Push payload: a 4096-byte record less the `aes128gcm` header (86 bytes), the
/// tag (16) and the padding delimiter (1).
pub const MAX_WEBPUSH_PAYLOAD: usize = 3993;
/// The largest APNs and FCM payloads.
pub const MAX_NATIVE_PAYLOAD: usize = 4096;
/// Tags one expression may name.
pub const MAX_EXPRESSION_TAGS: usize = 20;
/// The default time to live: four weeks, as Web Push services keep messages at most.
pub const DEFAULT_TTL: i64 = 28 * 24 * 3600;

/// A tag expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every registration.
    All,
    /// A registration carrying this tag.
    Tag(String),
    /// Not.
    Not(Box<Expr>),
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Whether a registration's tags match.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            Expr::All => true,
            Expr::Tag(t) => tags.iter().any(|x| x == t),
            Expr::Not(e) => !e.matches(tags),
            Expr::And(a, b) => a.matches(tags) && b.matches(tags),
            Expr::Or(a, b) => a.matches(tags) || b.matches(tags),
        }
    }
}

/// Parses `tags` as a script gives them.
pub fn parse_tags(tags: &Json) -> Result<(Expr, String), String> {
    match tags {
        Json::Null => Ok((Expr::All, String::new())),
        Json::String(s) => Ok((parse_expression(s)?, s.clone())),
        Json::Array(a) => {
            if a.is_empty() {
                return Err("tags is an empty array: give null to reach every registration.".into());
            }
            if a.len() > MAX_EXPRESSION_TAGS {
                return Err(format!("A send names at most {MAX_EXPRESSION_TAGS} tags."));
            }
            let mut names = Vec::new();
            for t in a {
                let t = t.as_str().ok_or("tags must be strings.")?;
                if !super::is_valid_tag(t) {
                    return Err(format!("'{t}' is not a valid tag."));
                }
                names.push(t.to_string());
            }
            let text = names.join(" || ");
            let expr = names.into_iter().map(Expr::Tag).reduce(|a, b| Expr::Or(Box::new(a), Box::new(b))).unwrap_or(Expr::All);
            Ok((expr, text))
        }
        _ => Err("tags must be a tag, a tag expression, an array of tags or null.".into()),
    }
}

/// Parses a tag expression (`a && !(b || c)`).
pub fn parse_expression(text: &str) -> Result<Expr, String> {
    if text.len() > 4096 {
        return Err("The tag expression is too long.".into());
    }
    let mut tokens = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'(' | b')' | b'!' => {
                tokens.push((b[i] as char).to_string());
                i += 1;
            }
            b'&' | b'|' if b.get(i + 1) == Some(&b[i]) => {
                tokens.push(text[i..i + 2].to_string());
                i += 2;
            }
            c if c.is_ascii_alphanumeric() || b"_@#.:-".contains(&c) => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_@#.:-".contains(&b[i])) {
                    i += 1;
                }
                tokens.push(text[start..i].to_string());
            }
            _ => return Err(format!("The tag expression {text:?} has an unexpected character at {i}.")),
        }
    }
    let tags = tokens.iter().filter(|t| !["(", ")", "!", "&&", "||"].contains(&t.as_str())).count();
    if tags == 0 {
        return Err("The tag expression names no tag.".into());
    }
    if tags > MAX_EXPRESSION_TAGS {
        return Err(format!("A tag expression names at most {MAX_EXPRESSION_TAGS} tags."));
    }
    let mut p = Parser { tokens, at: 0, depth: 0 };
    let e = p.or()?;
    if p.at != p.tokens.len() {
        return Err(format!("The tag expression {text:?} does not parse after {:?}.", p.tokens[p.at - 1]));
    }
    Ok(e)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek() == Some("||") {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.peek() == Some("&&") {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("The tag expression is nested too deeply.".into());
        }
        let e = match self.peek() {
            Some("!") => {
                self.at += 1;
                Expr::Not(Box::new(self.not()?))
            }
            Some("(") => {
                self.at += 1;
                let e = self.or()?;
                if self.peek() != Some(")") {
                    return Err("The tag expression misses a ')'.".into());
                }
                self.at += 1;
                e
            }
            Some(t) if !["(", ")", "!", "&&", "||"].contains(&t) => {
                let t = t.to_string();
                self.at += 1;
                if !super::is_valid_tag(&t) {
                    return Err(format!("'{t}' is not a valid tag."));
                }
                Expr::Tag(t)
            }
            other => return Err(format!("The tag expression expects a tag, not {:?}.", other.unwrap_or("its end"))),
        };
        self.depth -= 1;
        Ok(e)
    }
}

/// The text of a property (names case-insensitive, as Notification Hubs): a string as it is, a
/// number or boolean as JSON, anything else empty.
fn prop<'a>(props: &'a Map<String, Json>, name: &str) -> std::borrow::Cow<'a, str> {
    let v = props.get(name).or_else(|| props.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v));
    match v {
        Some(Json::String(s)) => std::borrow::Cow::Borrowed(s),
        Some(v @ (Json::Number(_) | Json::Bool(_))) => std::borrow::Cow::Owned(v.to_string()),
        _ => std::borrow::Cow::Borrowed(""),
    }
}

/// Renders a template body with a send's properties: `$(name)` and `$(name, n)` (clipped to n
/// characters) the property's text, `#(name)` its number (else 0), `{'text' + $(name) + …}` a
/// concatenation; inside a JSON string the text is escaped for it, outside it becomes a JSON string.
pub fn render(template: &str, props: &Map<String, Json>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let chars: Vec<char> = template.chars().collect();
    let mut i = 0;
    let mut in_string = false;
    let emit = |out: &mut String, text: &str, in_string: bool| {
        let quoted = Json::String(text.to_string()).to_string();
        if in_string {
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push_str(&quoted);
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if in_string && c == '\\' {
            out.push(c);
            if let Some(n) = chars.get(i + 1) {
                out.push(*n);
            }
            i += 2;
            continue;
        }
        if c == '"' {
            in_string = !in_string;
            out.push(c);
            i += 1;
            continue;
        }
        if (c == '$' || c == '#') && chars.get(i + 1) == Some(&'(') {
            let (value, next, numeric) = reference(&chars, i, props)?;
            if numeric {
                out.push_str(&value);
            } else {
                emit(&mut out, &value, in_string);
            }
            i = next;
            continue;
        }
        if c == '{' && in_string {
            // `{'a' + $(b)}`: a concatenation, when it parses as one.
            if let Some((value, next)) = concatenation(&chars, i, props)? {
                emit(&mut out, &value, in_string);
                i = next;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

/// `$(name[, n])` or `#(name)` at `at`: its text, the index after it, and whether it is numeric.
fn reference(chars: &[char], at: usize, props: &Map<String, Json>) -> Result<(String, usize, bool), String> {
    let close = chars[at..].iter().position(|c| *c == ')').map(|p| at + p).ok_or("A template expression misses its ')'.")?;
    let inner: String = chars[at + 2..close].iter().collect();
    let (name, clip) = match inner.split_once(',') {
        Some((n, c)) => (n.trim().to_string(), Some(c.trim().parse::<usize>().map_err(|_| format!("$({inner}): the clip is not a number"))?)),
        None => (inner.trim().to_string(), None),
    };
    let text = prop(props, &name);
    if chars[at] == '#' {
        let n: f64 = text.parse().unwrap_or(0.0);
        let s = if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() };
        return Ok((s, close + 1, true));
    }
    let text: String = match clip {
        Some(n) => text.chars().take(n).collect(),
        None => text.into_owned(),
    };
    Ok((text, close + 1, false))
}

/// `{ 'text' + $(name) + "text" }` at `at`, if it is one.
fn concatenation(chars: &[char], at: usize, props: &Map<String, Json>) -> Result<Option<(String, usize)>, String> {
    let mut i = at + 1;
    let mut out = String::new();
    let skip = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    loop {
        skip(&mut i);
        match chars.get(i) {
            Some('\'') => {
                let end = match chars[i + 1..].iter().position(|c| *c == '\'') {
                    Some(p) => i + 1 + p,
                    None => return Ok(None),
                };
                out.extend(&chars[i + 1..end]);
                i = end + 1;
            }
            Some('$' | '#') if chars.get(i + 1) == Some(&'(') => {
                let (v, next, _) = reference(chars, i, props)?;
                out.push_str(&v);
                i = next;
            }
            _ => return Ok(None),
        }
        skip(&mut i);
        match chars.get(i) {
            Some('+') => i += 1,
            Some('}') => return Ok(Some((out, i + 1))),
            _ => return Ok(None),
        }
    }
}

/// Queues a send: its notifications are in the outbox (durably) when this returns. Its answer is
/// the script's `success` result: `{id, queued, skipped}` (`skipped`: matching registrations of
/// native platforms the service has no credentials for, by service: `fcm`, `apns`).
pub async fn send(state: &crate::AppState, tenant: &str, args: PushSend) -> Result<Json, HostError> {
    send_to(state, tenant, args, None).await
}

/// [`send`], to one registration only when `only` names it (the portal's test notification).
pub async fn send_to(state: &crate::AppState, tenant: &str, args: PushSend, only: Option<&str>) -> Result<Json, HostError> {
    let bad = |m: String| HostError::new(400, m);
    let platform = args.platform.to_ascii_lowercase();
    match platform.as_str() {
        "template" | "webpush" | "gcm" | "apns" => {}
        "wns" | "mpns" => return Err(bad(format!("push.{platform} is not supported: Windows push services are not available to this service."))),
        other => return Err(bad(format!("push.{other} is not a push platform."))),
    }
    let (expr, tags_text) = parse_tags(&args.tags).map_err(bad)?;
    let ttl = match args.options.get("ttl") {
        None | Some(Json::Null) => DEFAULT_TTL,
        Some(v) => v.as_i64().filter(|t| (0..=DEFAULT_TTL).contains(t)).ok_or_else(|| bad(format!("ttl is a number of seconds from 0 to {DEFAULT_TTL}.")))?,
    };
    let urgency = match args.options.get("urgency").and_then(Json::as_str) {
        None => String::new(),
        Some(u @ ("very-low" | "low" | "normal" | "high")) => u.to_string(),
        Some(u) => return Err(bad(format!("urgency is very-low, low, normal or high, not {u:?}."))),
    };
    let topic = match args.options.get("topic").and_then(Json::as_str) {
        None => String::new(),
        Some(t) if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => t.to_string(),
        Some(t) => return Err(bad(format!("topic is 1 to 32 URL-safe base64 characters, not {t:?}."))),
    };
    let props = match (&platform[..], &args.payload) {
        ("template", Json::Object(m)) => m.clone(),
        ("template", _) => return Err(bad("push.send's payload is an object of template properties.".into())),
        _ => Map::new(),
    };
    let native = match &args.payload {
        Json::String(s) => s.clone(),
        Json::Null => return Err(bad("The notification has no payload.".into())),
        other => other.to_string(),
    };
    let registrations = state.storage.registrations(tenant, None, None).await.map_err(|e| HostError::new(500, e.to_string()))?;
    let configured = super::native::configured(state, tenant).await.map_err(|e| HostError::new(500, e.to_string()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut rows = Vec::new();
    let mut skipped: Map<String, Json> = Map::new();
    for r in registrations.iter().filter(|r| only.is_none_or(|id| r.id == id) && expr.matches(&super::tags_of(r))) {
        let payload = match (&platform[..], r.template_body.is_empty()) {
            ("template", false) => {
                render(&r.template_body, &props).map_err(|m| bad(format!("The template '{}' of registration {}: {m}", r.template_name, r.id)))?
            }
            ("template", true) if r.platform == "webpush" => native.clone(),
            ("template", true) => continue,
            (p, true) if p == r.platform || p == "gcm" && r.platform == "fcm" => native.clone(),
            _ => continue,
        };
        let native = match r.platform.as_str() {
            "gcm" | "fcm" => Some("fcm"),
            "apns" => Some("apns"),
            _ => None,
        };
        if let Some(service) = native.filter(|p| !configured.iter().any(|c| c == p)) {
            // A platform this service has no credentials for: counted, not queued.
            let n = skipped.get(service).and_then(Json::as_i64).unwrap_or(0) + 1;
            skipped.insert(service.to_string(), json!(n));
            continue;
        }
        let payload = match native {
            Some("fcm") => super::native::fcm_message(&payload, ttl, &urgency, &topic).map(|m| m.to_string()),
            Some(_) => super::native::apns_payload(&payload).map(|m| m.to_string()),
            None => Ok(payload),
        }
        .map_err(|m| bad(format!("The notification for registration {}: {m}", r.id)))?;
        let max = if r.platform == "webpush" { MAX_WEBPUSH_PAYLOAD } else { MAX_NATIVE_PAYLOAD };
        if payload.len() > max {
            return Err(bad(format!("The notification for registration {} is {} bytes; a {} notification is at most {max}.", r.id, payload.len(), r.platform)));
        }
        rows.push(row_for(r, payload, ttl, &urgency, &topic, now));
    }
    // The tier's push notifications per day.
    let metrics = state.metrics.tenant(tenant);
    if let (Some(m), Ok(Some(t))) = (&metrics, state.storage.tenant(tenant).await) {
        let (_, tier) = state.tier_of(&t.record);
        if !m.push_allowed(tier, rows.len() as u64) {
            return Err(HostError::new(
                403,
                format!("This service's tier allows {} push notifications per day; the quota resets at 00:00 UTC.", tier.push_per_day),
            ));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let record = SendRecord {
        id: id.clone(),
        platform: platform.clone(),
        tags: match only {
            Some(id) => format!("registration {id}"),
            None => tags_text,
        },
        created_at: roost_odata::format_datetime(&chrono::Utc::now()),
        ..Default::default()
    };
    state.storage.enqueue_push(tenant, &record, &rows).await.map_err(|e| HostError::new(500, e.to_string()))?;
    state.outbox.wake.notify_one();
    if let Some(m) = &metrics {
        m.push_queued(rows.len() as u64);
    }
    Ok(json!({ "id": id, "queued": rows.len(), "skipped": skipped }))
}

fn row_for(r: &RegistrationRecord, payload: String, ttl: i64, urgency: &str, topic: &str, now: i64) -> OutboxRow {
    OutboxRow {
        registration_id: r.id.clone(),
        platform: r.platform.clone(),
        endpoint: r.device_id.clone(),
        keys: r.keys.clone(),
        payload,
        ttl,
        urgency: urgency.to_string(),
        topic: topic.to_string(),
        expires_at: now + ttl.max(1) * 1000,
        next_at: now,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tag_expressions_follow_precedence_and_parentheses() {
        let e = parse_expression("a && !b || (c && d)").unwrap();
        assert!(e.matches(&tags(&["a"])));
        assert!(!e.matches(&tags(&["a", "b"])));
        assert!(e.matches(&tags(&["a", "b", "c", "d"])));
        assert!(!e.matches(&tags(&["c"])));
        let e = parse_expression("!(x || y)").unwrap();
        assert!(e.matches(&tags(&["z"])) && !e.matches(&tags(&["y"])));
        for bad in ["", "a &&", "(a", "a b", "a & b", "a || || b", "a,b", ")"] {
            assert!(parse_expression(bad).is_err(), "{bad}");
        }
        let many = (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>().join(" || ");
        assert!(parse_expression(&many).unwrap_err().contains("at most 20"));
        assert!(parse_expression(&"!".repeat(100).replace("!", "!(")).is_err());
    }

    #[test]
    fn templates_render_as_notification_hubs_did() {
        let props: Map<String, Json> = serde_json::from_value(json!({"message": "Hi \"you\"", "Count": 3, "name": "Ana"})).unwrap();
        assert_eq!(render(r#"{"data":{"msg":"$(message)"}}"#, &props).unwrap(), r#"{"data":{"msg":"Hi \"you\""}}"#);
        assert_eq!(
            render(r#"{"aps":{"alert":"{'Hello ' + $(name) + '!'}","badge":#(count)}}"#, &props).unwrap(),
            r#"{"aps":{"alert":"Hello Ana!","badge":3}}"#
        );
        assert_eq!(render(r#"{"t":"$(message, 2)","m":"$(missing)"}"#, &props).unwrap(), r#"{"t":"Hi","m":""}"#);
        assert_eq!(render(r#"{"v":$(name)}"#, &props).unwrap(), r#"{"v":"Ana"}"#);
        // Braces that are no concatenation stay as they are.
        assert_eq!(render(r#"{"s":"{not an expression}"}"#, &props).unwrap(), r#"{"s":"{not an expression}"}"#);
    }
}
