//! Fuzzing `mssql` (the T-SQL translator) against a real tenant: statements built from T-SQL's pieces,
//! mutations of real statements and raw noise never panic, never fail as the server's fault, and never
//! reach beyond the tenant's own tables. Also: columns added together are added all or none. Runs on
//! SQLite, and on PostgreSQL when ROOST_TEST_DATABASE_URL is set. `ROOST_FUZZ_CASES` sets the count.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use roost_api::{IdKind, TablePermissions, TenantSettings};
use roost_odata::sql::{ColType, Column, Value};
use roost_storage::{Storage, StorageConfig, StorageError, TableRecord};

const SEEDS: &[&str] = &[
    "select top 5 a, n from items where n > ? order by n desc",
    "select count(*) as c from items where a like 'x%' and n between 1 and 3",
    "update items set n = n + 1 where a = ?",
    "insert into items (a, n) values (?, 4)",
    "delete from items where n < 0",
    "select a from items where a in (select a from items where n = 2)",
    "select upper(a), len(a), getutcdate() from items",
    "select * from sqlite_master",
    "select * from other.items",
    "select * from items; drop table items",
];

async fn open(url: Option<String>) -> (Storage, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("roost-fuzz-{}", uuid::Uuid::new_v4().simple()));
    let storage = Storage::open(&StorageConfig {
        data_dir: dir.clone(),
        database_url: url,
        pg_max_connections: 4,
        listen_for_changes: false,
        statement_timeout_ms: 60_000,
    })
    .await
    .expect("open");
    let name = format!("fuzz-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    storage.create_tenant(&name, "app", "master", &TenantSettings::default()).await.expect("tenant");
    let rec = TableRecord { name: "items".into(), id_kind: IdKind::String, soft_delete: false, permissions: TablePermissions::default() };
    storage.create_table(&name, &rec).await.expect("table");
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    for (a, n) in [("x1", 1.0), ("x2", 2.0), ("y", -1.0)] {
        t.insert(&table, vec![("a".into(), Value::Text(a.into())), ("n".into(), Value::Number(n))]).await.expect("insert");
    }
    (storage, name, dir)
}

async fn fuzz(url: Option<String>) {
    let (storage, name, dir) = open(url).await;
    let cases = std::env::var("ROOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let mutated = (prop::sample::select(SEEDS), prop::collection::vec((any::<prop::sample::Index>(), prop::char::range(' ', '~'), any::<bool>()), 0..5))
        .prop_map(|(seed, edits)| {
            let mut chars: Vec<char> = seed.chars().collect();
            for (at, c, insert) in edits {
                let i = at.index(chars.len());
                if insert {
                    chars.insert(i, c);
                } else {
                    chars.remove(i);
                }
            }
            chars.into_iter().collect::<String>()
        });
    let input = prop_oneof![4 => mutated, 1 => "[ -~]{0,60}"];
    let mut statements: Vec<String> = Vec::new();
    for _ in 0..cases {
        statements.push(input.new_tree(&mut runner).expect("tree").current());
    }
    let (mut ok, mut refused) = (0, 0);
    for text in statements {
        let t = storage.tenant(&name).await.expect("load").expect("tenant");
        match roost_storage::tsql::run(&t, &text, &[Value::Text("x1".into())]).await {
            Ok(_) => ok += 1,
            Err(
                StorageError::BadInput(_)
                | StorageError::Database(_)
                | StorageError::UniqueViolation(_)
                | StorageError::UnknownColumn(_)
                | StorageError::Conversion
                | StorageError::NotFound,
            ) => refused += 1,
            Err(StorageError::Sql(sqlx::Error::Database(_))) => refused += 1,
            Err(other) => panic!("{text:?} failed as the server's fault: {other:?}"),
        }
    }
    // The tenant's table is still there and nothing outside it was touched.
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    assert!(t.table("items").is_some());
    eprintln!("mssql fuzz: {ok} statements ran, {refused} refused");
    assert!(ok > 0, "some statements ran");
    let _ = std::fs::remove_dir_all(dir);
}

async fn columns_are_added_all_or_none(url: Option<String>) {
    let (storage, name, dir) = open(url).await;
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    let before = t.columns(&table, true).await.expect("columns").len();
    // The third column collides with the first: the statement batch fails, and takes the second along.
    let cols = [("fresh1", ColType::String), ("fresh2", ColType::Number), ("fresh1", ColType::String)].map(|(n, ty)| Column { name: n.into(), ty });
    let r = roost_storage::ddl::add_columns(&t.db, t.schema.as_deref(), "items", &cols).await;
    assert!(r.is_err(), "{r:?}");
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let after = t.columns(&table, true).await.expect("columns");
    assert_eq!(after.len(), before, "no column was left behind: {after:?}");
    let _ = std::fs::remove_dir_all(dir);
}

fn postgres() -> Option<String> {
    std::env::var("ROOST_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mssql_fuzz_on_sqlite() {
    fuzz(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mssql_fuzz_on_postgres() {
    if let Some(url) = postgres() {
        fuzz(Some(url)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_columns_are_all_or_none_on_sqlite() {
    columns_are_added_all_or_none(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_columns_are_all_or_none_on_postgres() {
    if let Some(url) = postgres() {
        columns_are_added_all_or_none(Some(url)).await;
    }
}
