//! Strings order and compare as SQL Server's `SQL_Latin1_General_CP1_CI_AS` did (R3, §2.8, issue 17):
//! case-insensitive, accent-sensitive, accented letters beside their base letters. A fixture of 300
//! titles in Latin (with accents), Greek, Cyrillic, Hebrew, Arabic, Japanese, Chinese and Korean, with
//! digits and punctuation, must come back in the order the reference collator gives
//! (`roost_storage::collation::compare`, ties in insertion order), page by page; equality and the
//! substring functions must be case-insensitive and accent-sensitive, in `$filter`, in script `where`
//! translations and in `mssql`. And `__version` orders rows by their last write over HTTP.

use crate::helpers::{ids, TestApp};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use roost_storage::collation::{compare, fold};
use serde_json::json;

crate::on_both_backends!(titles_order_as_the_collator_orders_them, comparisons_are_case_insensitive_and_accent_sensitive, version_orders_rows_by_last_write);

const BASE: &[&str] = &[
    "Amélie",
    "American Beauty",
    "amelie",
    "AMÉLIE",
    "Æon Flux",
    "Aeon",
    "Ça",
    "Ca",
    "Cabaret",
    "Çatalhöyük",
    "Østerdal",
    "Ostrava",
    "Öland",
    "Oland",
    "Über",
    "Uber",
    "Ünal",
    "Zürich",
    "Zurich",
    "Ångström",
    "Angstrom",
    "Łódź",
    "Lodz",
    "Straße",
    "Strasse",
    "Ñandú",
    "Nandu",
    "Ærø",
    "résumé",
    "resume",
    "Résumé",
    "naïve",
    "naive",
    "café",
    "Cafe",
    "coöperate",
    "cooperate",
    "Émile",
    "Emile",
    "élan",
    "Elan",
    "Dvořák",
    "Dvorak",
    "Škoda",
    "Skoda",
    "Þórr",
    "Thor",
    "ðe",
    "de",
    "The Godfather",
    "the godfather",
    "The Dark Knight",
    "Pulp Fiction",
    "Ōsaka",
    "Osaka",
    "Kraków",
    "Krakow",
    "façade",
    "facade",
    "İstanbul",
    "Istanbul",
    "Αθήνα",
    "αθηνα",
    "Ωμέγα",
    "Ομέγα",
    "Σίσυφος",
    "Ελλάδα",
    "Москва",
    "москва",
    "Ёлка",
    "Елка",
    "Жизнь",
    "Київ",
    "Ярослав",
    "שלום",
    "سلام",
    "東京",
    "さくら",
    "北京",
    "서울",
    "2001: A Space Odyssey",
    "12 Angry Men",
    "9",
    "(500) Days of Summer",
    "co-op",
    "coop",
    "O'Brien",
    "OBrien",
    "zebra",
    "Zoë",
    "Zoe",
    "Ìle",
    "Ile",
    "Ŝanĝo",
    "Sango",
    "Għajn",
];

/// 300 titles: each base title, its sequel and its upper-case form (Unicode's full mapping).
fn fixture() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in BASE {
        out.push((*b).to_string());
        out.push(format!("{b} Returns"));
        out.push(b.to_uppercase());
    }
    out
}

async fn seed_titles(app: &TestApp) -> Vec<String> {
    app.create_table("titles", json!({})).await;
    let titles = fixture();
    assert!(titles.len() >= 200, "{} titles", titles.len());
    for (i, t) in titles.iter().enumerate() {
        let r = app.insert("titles", json!({ "id": format!("t{i:03}"), "title": t })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{t}: {}", r.text);
    }
    titles
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

async fn titles_of(app: &TestApp, query: &str) -> Vec<String> {
    app.rows(&format!("/tables/titles?{query}")).await.iter().map(|r| r["title"].as_str().unwrap_or_default().to_string()).collect()
}

async fn titles_order_as_the_collator_orders_them(app: TestApp) {
    let titles = seed_titles(&app).await;
    let mut expected: Vec<(usize, &String)> = titles.iter().enumerate().collect();
    expected.sort_by(|(i, a), (j, b)| compare(a, b).then(i.cmp(j)));
    let expected: Vec<String> = expected.into_iter().map(|(_, t)| t.clone()).collect();
    // Page by page, as a client pages with $skip/$top.
    let mut got = Vec::new();
    for skip in (0..titles.len()).step_by(50) {
        got.extend(titles_of(&app, &format!("$orderby=title&$skip={skip}&$top=50")).await);
    }
    assert_eq!(got, expected, "$orderby=title pages");
    let mut desc = titles_of(&app, "$orderby=title%20desc&$top=1000").await;
    desc.reverse();
    assert_eq!(desc, expected, "$orderby=title desc is the reverse");
    // An ordering on a computed string uses the collation too.
    let computed = titles_of(&app, "$orderby=concat(title,'')&$top=1000").await;
    assert_eq!(computed, expected, "$orderby=concat(title,'')");
    // By hand: accented letters sort beside their base letters, not after z.
    let at = |t: &str| got.iter().position(|x| x == t).unwrap_or_else(|| panic!("{t} missing"));
    assert!(at("Amélie") < at("American Beauty"));
    assert!(at("Æon Flux") < at("Amélie"), "Æ sorts as ae");
    assert!(at("Ça") < at("Cabaret"), "Ç beside C");
    assert!(at("Oland") < at("Østerdal") && at("Østerdal") < at("Ostrava"), "Ø weighs as o first (\"oste\" < \"ostr\")");
    assert!(at("Ångström") < at("Cabaret"), "Å among the a's");
    assert!(at("Straße") < at("Thor"));
    assert!(at("zebra") < at("Αθήνα") && at("Αθήνα") < at("Москва"), "Latin, then Greek, then Cyrillic");
    assert!(at("amelie") < at("Amélie"), "e before é at the secondary level");
}

/// Which fixture titles a filter should return.
type Want = Box<dyn Fn(&str) -> bool>;

async fn comparisons_are_case_insensitive_and_accent_sensitive(app: TestApp) {
    let titles = seed_titles(&app).await;
    // Equality, ordering comparisons and every substring function, against the collator and `fold`.
    let eq = |x: &str, y: &str| compare(x, y) == std::cmp::Ordering::Equal;
    let cases: Vec<(String, Want)> = vec![
        ("title eq 'amélie'".into(), Box::new(move |t| eq(t, "amélie"))),
        ("title eq 'AMELIE'".into(), Box::new(move |t| eq(t, "amelie"))),
        ("title ne 'café'".into(), Box::new(move |t| !eq(t, "café"))),
        ("title lt 'b'".into(), Box::new(|t| compare(t, "b").is_lt())),
        ("title ge 'Ça'".into(), Box::new(|t| compare(t, "Ça").is_ge())),
        ("title eq 'STRASSE'".into(), Box::new(move |t| eq(t, "strasse"))),
        ("startswith(title, 'AMÉ')".into(), Box::new(|t| fold(t).starts_with(&fold("amé")))),
        ("startswith(title, 'ame')".into(), Box::new(|t| fold(t).starts_with("ame"))),
        ("endswith(title, 'É')".into(), Box::new(|t| fold(t).ends_with("é"))),
        ("substringof('ö', title)".into(), Box::new(|t| fold(t).contains('ö'))),
        ("substringof('o', title)".into(), Box::new(|t| fold(t).contains('o'))),
        ("substringof('ΑΘΉ', title)".into(), Box::new(|t| fold(t).contains(&fold("αθή")))),
        ("substringof('ss', title)".into(), Box::new(|t| fold(t).contains("ss"))),
        (
            "indexof(title, 'LIE') eq 3".into(),
            Box::new(|t| {
                let f = fold(t);
                f.find("lie").map(|b| f[..b].chars().count()) == Some(3)
            }),
        ),
    ];
    for (f, want) in &cases {
        let got = titles_of(&app, &format!("$filter={}&$top=1000", enc(f))).await;
        let expected: Vec<String> = titles.iter().filter(|t| want(t)).cloned().collect();
        let (mut g, mut e) = (got.clone(), expected.clone());
        g.sort();
        e.sort();
        assert_eq!(g, e, "{f}");
        assert!(!expected.is_empty() || f.contains("ne"), "{f} should match something");
    }
    // By hand: 'e' ne 'é', 'a' eq 'A'.
    assert_eq!(titles_of(&app, &format!("$filter={}", enc("title eq 'ÉLAN'"))).await, ["élan", "ÉLAN"]);
    assert_eq!(titles_of(&app, &format!("$filter={}", enc("title eq 'elan'"))).await, ["Elan", "ELAN"]);
    // Equal titles in insertion order, then the longer ones.
    let starts = titles_of(&app, &format!("$filter={}&$orderby=title", enc("startswith(title, 'amé')"))).await;
    assert_eq!(starts, ["Amélie", "AMÉLIE", "AMÉLIE", "AMÉLIE", "Amélie Returns", "AMÉLIE Returns"]);

    // Script `where` (object and function forms) and mssql LIKE: the same rules.
    let r = app
        .put_script(
            "api",
            "find",
            "exports.get = function (req, res) {
            var t = req.service.tables.getTable('titles');
            t.where({ title: 'AMÉLIE' }).read({ success: function (a) {
                t.where(function (p) { return this.title.indexOf(p) === 0; }, 'amé').read({ success: function (b) {
                    req.service.mssql.query('select title from titles where title like ? order by title', ['ÉLA%'], { success: function (c) {
                        res.send(200, { eq: a.map(function (r) { return r.title; }), starts: b.length, like: c.map(function (r) { return r.title; }) });
                    } });
                } });
            } });
        };",
            json!({"permissions": {"routes": {"*": {"permission": "application"}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/api/find").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    let mut eqs: Vec<String> = body["eq"].as_array().unwrap_or(&vec![]).iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect();
    eqs.sort();
    assert_eq!(eqs, ["AMÉLIE", "AMÉLIE", "AMÉLIE", "Amélie"], "{body}");
    assert_eq!(body["starts"], 6, "{body}");
    let mut like: Vec<String> = body["like"].as_array().unwrap_or(&vec![]).iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect();
    like.sort();
    assert_eq!(like, ["ÉLAN", "élan", "élan Returns"], "{body}");
}

async fn version_orders_rows_by_last_write(app: TestApp) {
    app.create_table("notes", json!({})).await;
    let mut handles = Vec::new();
    for w in 0..4 {
        let (base, key, client) = (app.url("/tables/notes"), app.app_key.clone(), app.client().clone());
        let props = "__systemProperties=__version";
        handles.push(tokio::spawn(async move {
            let mut last = Vec::new();
            for i in 0..10 {
                let r = client
                    .post(format!("{base}?{props}"))
                    .header("X-ZUMO-APPLICATION", &key)
                    .json(&json!({ "id": format!("n{w}-{i}"), "n": i }))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), StatusCode::CREATED);
                let etag = r.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string).expect("etag");
                let v: serde_json::Value = r.json().await.expect("json");
                assert_eq!(format!("\"{}\"", v["__version"].as_str().unwrap_or_default()), etag);
                last.push((format!("n{w}-{i}"), v["__version"].as_str().unwrap_or_default().to_string()));
            }
            // Touch the first row again: it becomes this writer's latest.
            let r = client
                .patch(format!("{base}/n{w}-0?{props}"))
                .header("X-ZUMO-APPLICATION", &key)
                .header("If-Match", format!("\"{}\"", last[0].1))
                .json(&json!({ "n": 100 }))
                .send()
                .await
                .expect("patch");
            assert_eq!(r.status(), StatusCode::OK);
            let v: serde_json::Value = r.json().await.expect("json");
            last.push((format!("n{w}-0"), v["__version"].as_str().unwrap_or_default().to_string()));
            last
        }));
    }
    use base64::Engine as _;
    let decode = |s: &str| u64::from_be_bytes(base64::engine::general_purpose::STANDARD.decode(s).expect("base64").try_into().expect("8 bytes"));
    let mut latest: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for h in handles {
        let writes = h.await.expect("writer");
        // Within one writer, each write's version exceeds the one before.
        for pair in writes.windows(2) {
            assert!(decode(&pair[0].1) < decode(&pair[1].1), "{pair:?}");
        }
        for (id, v) in writes {
            latest.insert(id, decode(&v));
        }
    }
    let mut expected: Vec<(u64, String)> = latest.into_iter().map(|(id, v)| (v, id)).collect();
    expected.sort();
    let expected_versions: Vec<u64> = expected.iter().map(|(v, _)| *v).collect();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let rows = app.rows("/tables/notes?$orderby=__version&$top=1000&__systemProperties=__version").await;
    assert_eq!(ids(&rows), expected);
    // No script reaches the counter: its table, its SQLite function, its PostgreSQL sequence.
    let attempts = [
        "select v from __rowversion",
        "update __rowversion set v = 0",
        "select roost_rowversion() as v",
        "select nextval('__rowversion') as v",
        "select roost_rowversion_at_least(0) as v",
    ];
    let r = app
        .put_script(
            "api",
            "poke",
            &format!(
                "exports.get = function (req, res) {{
                    var attempts = {}, refused = [], left = attempts.length;
                    attempts.forEach(function (sql) {{
                        req.service.mssql.query(sql, {{
                            success: function () {{ if (--left === 0) res.send(200, refused); }},
                            error: function (e) {{ refused.push(sql); if (--left === 0) res.send(200, refused); }}
                        }});
                    }});
                }};",
                json!(attempts)
            ),
            json!({"permissions": {"routes": {"*": {"permission": "application"}}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/api/poke").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut refused: Vec<String> = serde_json::from_value(r.json()).expect("list");
    refused.sort();
    let mut all: Vec<String> = attempts.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(refused, all, "every attempt on the counter is refused");
    let high = *expected_versions.iter().max().expect("versions");
    let r = app.call(Method::POST, "/tables/notes?__systemProperties=__version", Some(json!({"n": 0}))).await;
    assert!(decode(r.json()["__version"].as_str().unwrap_or_default()) > high, "the counter went on: {}", r.text);

    // A stale version is refused (412) with the current one.
    let r = app
        .request(
            Method::PATCH,
            "/tables/notes/n0-0",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("If-Match", "\"AAAAAAAAAAE=\""), ("Content-Type", "application/json")],
            Some("{\"n\":1}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
}
