//! `__version` is a rowversion (protocol §2.6, issue 17): 8 big-endian bytes of a per-tenant counter
//! that every write advances, strictly increasing across concurrent writers and across restarts. And
//! a SQLite tenant database written by an older Roost (string columns under `NOCASE`, random
//! versions) upgrades itself when it is opened. Runs on SQLite, and on PostgreSQL when
//! ROOST_TEST_DATABASE_URL is set.

use roost_api::{IdKind, TablePermissions, TenantSettings};
use roost_odata::sql::Value;
use roost_storage::items::{Query, SystemProps};
mod common;

use common::open;
use roost_storage::{Storage, TableRecord, Tenant};

/// The tables' titles under `$orderby=title`.
async fn titles_in_order(t: &Tenant, table: &roost_storage::Table) -> Vec<String> {
    let order = roost_odata::parse_orderby("title").expect("orderby");
    let (rows, _) = t.query(table, &Query { orderby: &order, ..Default::default() }).await.expect("query");
    rows.iter().filter_map(|r| r.iter().find(|(k, _)| k == "title").and_then(|(_, v)| if let Value::Text(s) = v { Some(s.clone()) } else { None })).collect()
}

fn counter(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().expect("8 bytes"))
}

async fn versions_by_id(storage: &Storage, tenant: &str) -> Vec<(String, u64)> {
    let t = storage.tenant(tenant).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    let order = roost_odata::parse_orderby("__version").expect("orderby");
    let q = Query { system: SystemProps::ALL, orderby: &order, top: Some(10_000), ..Default::default() };
    let (rows, _) = t.query(&table, &q).await.expect("query");
    rows.into_iter()
        .map(|r| {
            let get = |n: &str| r.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let (Some(Value::Text(id)), Some(Value::Bytes(v))) = (get("id"), get("__version")) else { panic!("row without id or version: {r:?}") };
            (id, counter(&v))
        })
        .collect()
}

/// Concurrent writers: every write's version exceeds that of every write acknowledged before it
/// started, and ordering by `__version` gives the rows in the order of their last writes.
async fn concurrent_writes_and_a_restart(url: Option<String>) {
    let dir = std::env::temp_dir().join(format!("roost-rowversion-{}", uuid::Uuid::new_v4().simple()));
    let storage = open(&dir, url.clone()).await;
    let name = format!("rv-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    storage.create_tenant(&name, "app", "master", &TenantSettings::default()).await.expect("tenant");
    let rec = TableRecord { name: "items".into(), id_kind: IdKind::String, soft_delete: true, permissions: TablePermissions::default() };
    storage.create_table(&name, &rec).await.expect("table");
    let clock = std::time::Instant::now();
    // (id, version, started, acknowledged) of every write, in nanoseconds since `clock`.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let storage = storage.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let t = storage.tenant(&name).await.expect("load").expect("tenant");
            let table = t.table("items").expect("items");
            let mut log = Vec::new();
            for i in 0..12 {
                let id = format!("w{w}-{i}");
                let start = clock.elapsed().as_nanos();
                let written = t.insert(&table, vec![("id".into(), Value::Text(id.clone())), ("n".into(), Value::Number(f64::from(i)))]).await.expect("insert");
                log.push((id, counter(&written.version.expect("version")), start, clock.elapsed().as_nanos()));
                // Update an earlier row of this writer: its last write moves to now.
                let back = format!("w{w}-{}", (i * 7) % (i + 1));
                let start = clock.elapsed().as_nanos();
                let written = t
                    .update(&table, &Value::Text(back.clone()), vec![("n".into(), Value::Number(-1.0))], None, false)
                    .await
                    .unwrap_or_else(|e| panic!("update {back}: {e:?}"));
                log.push((back, counter(&written.version.expect("version")), start, clock.elapsed().as_nanos()));
            }
            log
        }));
    }
    let mut log = Vec::new();
    for t in tasks {
        log.extend(t.await.expect("writer"));
    }
    let mut seen = std::collections::HashSet::new();
    for (_, v, _, _) in &log {
        assert!(seen.insert(*v), "version {v} was given twice");
    }
    for a in &log {
        for b in &log {
            if a.3 < b.2 {
                assert!(a.1 < b.1, "{} (version {}) was acknowledged before {} (version {}) started", a.0, a.1, b.0, b.1);
            }
        }
    }
    // Each row's stored version is its last write's; ordering by __version orders by last write.
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (id, v, _, _) in &log {
        let e = last.entry(id.clone()).or_default();
        *e = (*e).max(*v);
    }
    let mut expected: Vec<(String, u64)> = last.into_iter().collect();
    expected.sort_by_key(|(_, v)| *v);
    let stored = versions_by_id(&storage, &name).await;
    assert_eq!(stored, expected, "rows ordered by __version");
    let high = log.iter().map(|(_, v, _, _)| *v).max().unwrap_or(0);

    // A soft delete is a write too.
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    t.delete(&table, &Value::Text("w0-0".into()), None).await.expect("delete");
    let deleted = {
        let q = Query { system: SystemProps::ALL, include_deleted: true, id: Some(Value::Text("w0-0".into())), top: Some(1), ..Default::default() };
        let (rows, _) = t.query(&table, &q).await.expect("query");
        match rows[0].iter().find(|(k, _)| k == "__version").map(|(_, v)| v.clone()) {
            Some(Value::Bytes(v)) => counter(&v),
            other => panic!("{other:?}"),
        }
    };
    assert!(deleted > high, "the soft delete's version {deleted} is above {high}");
    drop((t, table));

    // Restart: the counter continues above every version handed out before.
    drop(storage);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let storage = open(&dir, url).await;
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    let after = t.insert(&table, vec![("n".into(), Value::Number(1.0))]).await.expect("insert after restart");
    let after = counter(&after.version.expect("version"));
    assert!(after > deleted, "after a restart the counter went on: {after} > {deleted}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_versions_follow_writes_across_writers_and_restarts() {
    concurrent_writes_and_a_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_versions_follow_writes_across_writers_and_restarts() {
    let Ok(url) = std::env::var("ROOST_TEST_DATABASE_URL") else {
        eprintln!("ROOST_TEST_DATABASE_URL is not set: the PostgreSQL half is skipped");
        return;
    };
    concurrent_writes_and_a_restart(Some(url)).await;
}

/// A tenant file from before issue 17: its string columns use NOCASE, its versions are random, and it
/// has no counter. Opening it rebuilds the table with the tenant collation (rows and indexes kept) and
/// renumbers the versions in the order of the rows' last writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tenant_files_from_before_upgrade_when_opened() {
    let dir = std::env::temp_dir().join(format!("roost-rowversion-{}", uuid::Uuid::new_v4().simple()));
    let storage = open(&dir, None).await;
    let name = format!("old-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    storage.create_tenant(&name, "app", "master", &TenantSettings::default()).await.expect("tenant");
    let rec = TableRecord { name: "items".into(), id_kind: IdKind::String, soft_delete: false, permissions: TablePermissions::default() };
    storage.create_table(&name, &rec).await.expect("table");
    {
        let t = storage.tenant(&name).await.expect("load").expect("tenant");
        let table = t.table("items").expect("items");
        t.insert(&table, vec![("id".into(), Value::Text("x".into())), ("title".into(), Value::Text("first".into()))]).await.expect("insert");
    }
    drop(storage);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Make the file what an older Roost wrote.
    let file = dir.join("tenants").join(format!("{name}.db"));
    {
        let conn = rusqlite::Connection::open(&file).expect("open file");
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'COLLATE ROOST_CI_AS', 'COLLATE NOCASE') WHERE type = 'table';
             PRAGMA writable_schema = OFF;",
        )
        .expect("old collation");
    }
    {
        let conn = rusqlite::Connection::open(&file).expect("reopen file");
        conn.execute_batch("REINDEX; DROP TABLE \"__rowversion\"; DELETE FROM items; CREATE INDEX ix_title ON items (title, \"__seq\");").expect("old state");
        // Random versions, the later write holding the smaller one.
        conn.execute_batch(
            "INSERT INTO items (id, \"__createdAt\", \"__updatedAt\", \"__version\", title) VALUES
               ('b', '2020-01-01T00:00:00.000Z', '2020-01-02T00:00:00.000Z', x'00000000000000ff', 'Amélie'),
               ('a', '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z', x'f0f0f0f0f0f0f0f0', 'American Beauty'),
               ('c', '2020-01-01T00:00:00.000Z', '2020-01-03T00:00:00.000Z', x'8000000000000000', 'amelie');",
        )
        .expect("old rows");
    }
    let storage = open(&dir, None).await;
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    assert_eq!(versions_by_id(&storage, &name).await, vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    // The collation: Amélie sorts before American Beauty; 'AMÉLIE' finds Amélie and not amelie.
    assert_eq!(titles_in_order(&t, &table).await, ["amelie", "Amélie", "American Beauty"]);
    let filter = roost_odata::parse_filter("title eq 'AMÉLIE'").expect("filter");
    let (rows, _) = t.query(&table, &Query { filter: Some(&filter), ..Default::default() }).await.expect("query");
    assert_eq!(rows.len(), 1);
    // The index survived the rebuild, and a new write goes on from the renumbered versions.
    let conn = rusqlite::Connection::open(&file).expect("file");
    let indexes: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'items' AND name = 'ix_title'", [], |r| r.get(0))
        .expect("indexes");
    assert_eq!(indexes, 1);
    let nocase: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%NOCASE%'", [], |r| r.get(0)).expect("schema");
    assert_eq!(nocase, 0);
    let written = t.insert(&table, vec![("title".into(), Value::Text("new".into()))]).await.expect("insert");
    assert_eq!(counter(&written.version.expect("version")), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PostgreSQL database from before migration 0012: tenant string columns are `citext`, versions
/// random, no rowversion sequence. Running the migrations again (0012 undone in the ledger) moves the
/// columns to the collation, makes the sequence and renumbers versions by last write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tenant_schemas_from_before_upgrade_with_migration_12() {
    use sqlx::Connection as _;
    let Ok(base) = std::env::var("ROOST_TEST_DATABASE_URL") else {
        eprintln!("ROOST_TEST_DATABASE_URL is not set: skipped");
        return;
    };
    let db = format!("roost_upgrade_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(&format!("create database \"{db}\"")).execute(&mut admin).await.expect("create database");
    let url = format!("{}/{db}", base.rsplit_once('/').expect("url with a database").0);
    let dir = std::env::temp_dir().join(format!("roost-rowversion-{}", uuid::Uuid::new_v4().simple()));
    let storage = open(&dir, Some(url.clone())).await;
    let name = "old-pg";
    storage.create_tenant(name, "app", "master", &TenantSettings::default()).await.expect("tenant");
    let rec = TableRecord { name: "items".into(), id_kind: IdKind::String, soft_delete: false, permissions: TablePermissions::default() };
    storage.create_table(name, &rec).await.expect("table");
    {
        let t = storage.tenant(name).await.expect("load").expect("tenant");
        let table = t.table("items").expect("items");
        t.insert(&table, vec![("id".into(), Value::Text("x".into())), ("title".into(), Value::Text("first".into()))]).await.expect("insert");
    }
    drop(storage);
    let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        r#"delete from t_old_pg.items;
           alter table t_old_pg.items alter column id type citext, alter column title type citext;
           create index ix_title on t_old_pg.items (title, "__seq");
           drop sequence t_old_pg.__rowversion;
           insert into t_old_pg.items (id, "__createdAt", "__updatedAt", "__version", title) values
             ('b', '2020-01-01', '2020-01-02', '\x00000000000000ff', 'Amélie'),
             ('a', '2020-01-01', '2020-01-01', '\xf0f0f0f0f0f0f0f0', 'American Beauty'),
             ('c', '2020-01-01', '2020-01-03', '\x8000000000000000', 'amelie');
           delete from _sqlx_migrations where version = 12;"#,
    )
    .execute(&mut c)
    .await
    .expect("make it old");
    let storage = open(&dir, Some(url.clone())).await;
    assert_eq!(versions_by_id(&storage, name).await, vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    let t = storage.tenant(name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    assert_eq!(titles_in_order(&t, &table).await, ["amelie", "Amélie", "American Beauty"]);
    let (citext,): (i64,) = sqlx::query_as("select count(*) from information_schema.columns where table_schema = 't_old_pg' and udt_name = 'citext'")
        .fetch_one(&mut c)
        .await
        .expect("columns");
    assert_eq!(citext, 0);
    let (indexes,): (i64,) =
        sqlx::query_as("select count(*) from pg_indexes where schemaname = 't_old_pg' and indexname = 'ix_title'").fetch_one(&mut c).await.expect("indexes");
    assert_eq!(indexes, 1);
    let written = t.insert(&table, vec![("title".into(), Value::Text("new".into()))]).await.expect("insert");
    assert_eq!(counter(&written.version.expect("version")), 4);
    drop((t, table, storage));
    drop(c);
    let _ = sqlx::query(&format!("drop database if exists \"{db}\" with (force)")).execute(&mut admin).await;
    let _ = std::fs::remove_dir_all(&dir);
}
