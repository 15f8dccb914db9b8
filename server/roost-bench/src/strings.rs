//! `roost-bench strings [--before BIN] [--seconds N] [--rows N]`: the cost of the tenant string
//! collation (issue 17). A table of `rows` titles in several scripts and accents, then: inserts (the
//! title's automatic index maintained), 50-row pages over `$orderby=title`, a range on the title with
//! that order, and a `startswith` search. With `--before`, the same scenarios run in the same run
//! against another build's `roost-bench` (say, the commit before the collation) on fresh storage, and
//! each figure is printed beside it. On SQLite, and on PostgreSQL when ROOST_BENCH_DATABASE_URL is set
//! (each build gets a database of its own there, dropped afterwards).

use crate::{fill_rows, load, print, setup_tenant, spawn_exe, temp_dir, Figures, Options};
use anyhow::Context as _;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

const WORDS: &[&str] = &[
    "Amélie",
    "American",
    "Æon",
    "Ça",
    "Cabaret",
    "Østerdal",
    "Ostrava",
    "Zürich",
    "naïve",
    "résumé",
    "Straße",
    "Ångström",
    "Łódź",
    "Dvořák",
    "Škoda",
    "Þórr",
    "façade",
    "İstanbul",
    "Αθήνα",
    "Ωμέγα",
    "Москва",
    "Ёлка",
    "東京",
    "서울",
    "the",
    "godfather",
    "dark",
    "knight",
    "pulp",
    "fiction",
    "zebra",
    "co-op",
    "O'Brien",
];

/// A deterministic title: three words and the row number.
fn title(n: u64) -> String {
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let w = |k: u64| WORDS[((h >> (k * 7)) % WORDS.len() as u64) as usize];
    format!("{} {} {} {n}", w(0), w(1), w(2))
}

fn body(n: u64) -> String {
    json!({ "title": title(n), "n": n }).to_string()
}

/// An OData string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The four scenarios against one server.
async fn scenarios(addr: &str, o: &Options, backend: &str, build: &str) -> anyhow::Result<Vec<(String, Figures)>> {
    let tenant = format!("strings-{}", std::process::id());
    let key = setup_tenant(addr, &tenant).await?;
    let headers = vec![("x-zumo-application".to_string(), key)];
    let path = format!("/t/{tenant}/tables/items");
    let p = path.clone();
    fill_rows(
        addr,
        &Options { seconds: 0, connections: o.connections, rows: 0, tenants: 0 },
        &headers,
        o.rows,
        Arc::new(move |n| ("POST".into(), p.clone(), Some(body(n)))),
    )
    .await?;
    // Warm up: the title's automatic index is made after a few orderings on it.
    let p = path.clone();
    load(
        addr,
        &Options { seconds: 1, connections: 1, rows: 0, tenants: 0 },
        headers.clone(),
        200,
        Arc::new(move |_| ("GET".into(), format!("{p}?$orderby=title&$top=1"), None)),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let rows = o.rows as u64;
    let mut out = Vec::new();
    let p = path.clone();
    let f = load(
        addr,
        o,
        headers.clone(),
        200,
        Arc::new(move |n| ("GET".into(), format!("{p}?$orderby=title&$top=50&$skip={}", (n * 37) % rows.saturating_sub(50).max(1)), None)),
    )
    .await?;
    out.push((format!("{build}/{backend} $orderby=title page"), f));
    let p = path.clone();
    let f = load(
        addr,
        o,
        headers.clone(),
        200,
        Arc::new(move |n| {
            ("GET".into(), format!("{p}?$filter={}&$orderby=title&$top=50", enc(&format!("title ge {}", lit(WORDS[n as usize % WORDS.len()])))), None)
        }),
    )
    .await?;
    out.push((format!("{build}/{backend} title ge … order"), f));
    let p = path.clone();
    let f = load(
        addr,
        o,
        headers.clone(),
        200,
        Arc::new(move |n| {
            (
                "GET".into(),
                format!("{p}?$filter={}&$top=50", enc(&format!("startswith(title, {})", lit(&WORDS[n as usize % WORDS.len()].to_uppercase())))),
                None,
            )
        }),
    )
    .await?;
    out.push((format!("{build}/{backend} startswith(title)"), f));
    let p = path.clone();
    let f = load(addr, o, headers, 201, Arc::new(move |n| ("POST".into(), p.clone(), Some(body(rows + n))))).await?;
    out.push((format!("{build}/{backend} insert (title indexed)"), f));
    Ok(out)
}

/// A fresh PostgreSQL database for one build (the builds' catalogs differ in schema).
async fn fresh_database(url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("drop database if exists \"{name}\"")).execute(&mut c).await?;
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut c).await?;
    let base = url.rsplit_once('/').map(|(b, _)| b).context("database url without a path")?;
    Ok(format!("{base}/{name}"))
}

async fn drop_database(url: &str, name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut c) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)")).execute(&mut c).await;
    }
}

pub(crate) async fn bench(args: &[String]) -> anyhow::Result<()> {
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let seconds = arg("--seconds").map(|s| s.parse()).transpose()?.unwrap_or(5);
    let rows = arg("--rows").map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let o = Options { seconds, connections: 16, rows, tenants: 0 };
    let mut builds: Vec<(&str, PathBuf)> = vec![("now", std::env::current_exe()?)];
    if let Some(b) = arg("--before") {
        builds.push(("before", PathBuf::from(b)));
    }
    println!("roost-bench strings: {} connections, {seconds} s per scenario, {rows} rows", o.connections);
    let mut backends = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("ROOST_BENCH_DATABASE_URL") {
        backends.push(("postgres", Some(url)));
    }
    for (backend, url) in backends {
        let mut figures: Vec<Vec<(String, Figures)>> = Vec::new();
        for (build, exe) in &builds {
            let db = format!("roost_strings_{build}_{}", std::process::id());
            let mut server_args = vec!["serve-roost".to_string()];
            if let Some(u) = &url {
                server_args.push(fresh_database(u, &db).await?);
            }
            let a: Vec<&str> = server_args.iter().map(String::as_str).collect();
            let server = spawn_exe(exe, &a, &format!("roost {build}"), temp_dir(&format!("strings-{build}-{backend}"))?).await?;
            let f = scenarios(&server.addr, &o, backend, build).await;
            drop(server);
            if let Some(u) = &url {
                drop_database(u, &db).await;
            }
            figures.push(f?);
        }
        for (i, (label, f)) in figures[0].iter().enumerate() {
            print(label, f, None);
            if let Some((label, before)) = figures.get(1).and_then(|b| b.get(i)) {
                print(label, before, None);
                println!("{:<34} {:>9.1}% of before", "", 100.0 * f.rps / before.rps);
            }
        }
    }
    Ok(())
}
