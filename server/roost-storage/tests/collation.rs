//! PostgreSQL's half of the tenant string collation agrees with the Rust half SQLite uses
//! (`roost_storage::collation`): `roost.fold` folds as `fold` does, and `roost.ci_as` orders and
//! equates as `compare` does, over strings built from pieces that stress them (accents precomposed and
//! not, sigma, ß, ligatures, full-width forms, Hangul, scripts side by side). Needs
//! ROOST_TEST_DATABASE_URL (a database migrated by Roost; the test opens storage to migrate it).

mod common;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use roost_storage::collation::{compare, fold};

const PIECES: &[&str] = &[
    "a", "A", "e", "E", "i", "o", "s", "S", "z", " ", "-", "'", "1", "9", "é", "É", "e\u{301}", "\u{301}", "ß", "ss", "ﬁ", "fi", "Ａ", "Σ", "σ", "ς", "ö", "Ø",
    "Æ", "ae", "Å", "Ç", "c", "İ", "ı", "Ж", "ё", "Ω", "東", "각", "ㄱ", "ǅ", "½",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_folds_orders_and_equates_as_the_rust_collator() {
    let Ok(url) = std::env::var("ROOST_TEST_DATABASE_URL") else {
        eprintln!("ROOST_TEST_DATABASE_URL is not set: skipped");
        return;
    };
    let dir = std::env::temp_dir().join(format!("roost-collation-{}", uuid::Uuid::new_v4().simple()));
    // Opening storage applies the migrations (roost.ci_as, roost.fold).
    let storage = common::open(&dir, Some(url.clone())).await;
    drop(storage);
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let mut runner = TestRunner::new(Config { failure_persistence: None, ..Config::default() });
    let strategy = prop::collection::vec(prop::sample::select(PIECES), 0..7).prop_map(|p| p.concat());
    let strings: Vec<String> = (0..400).map(|_| strategy.new_tree(&mut runner).expect("tree").current()).collect();
    for s in &strings {
        let (pg,): (String,) = sqlx::query_as("select roost.fold($1)").bind(s).fetch_one(&pool).await.expect("fold");
        assert_eq!(pg, fold(s), "roost.fold({s:?})");
    }
    // Order: PostgreSQL sorts with the collation, ties by position; Rust sorts the same way.
    let rows: Vec<(String,)> = sqlx::query_as("select s from unnest($1::text[]) with ordinality as u(s, n) order by s collate roost.ci_as, n")
        .bind(&strings)
        .fetch_all(&pool)
        .await
        .expect("order");
    let pg: Vec<String> = rows.into_iter().map(|(s,)| s).collect();
    let mut rust: Vec<(usize, &String)> = strings.iter().enumerate().collect();
    rust.sort_by(|(i, a), (j, b)| compare(a, b).then(i.cmp(j)));
    let rust: Vec<String> = rust.into_iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(pg, rust, "ORDER BY under roost.ci_as");
    // Equality of neighbours.
    for w in strings.windows(2) {
        let (eq,): (bool,) = sqlx::query_as("select $1 collate roost.ci_as = $2").bind(&w[0]).bind(&w[1]).fetch_one(&pool).await.expect("eq");
        assert_eq!(eq, compare(&w[0], &w[1]).is_eq(), "{:?} = {:?}", w[0], w[1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ordered queries on a string column stay indexed: the automatic index a few orderings create is
/// built with the tenant collation, and the planner uses it for `$orderby=title` and for a range on
/// the title with that order (EXPLAIN on each backend).
async fn ordered_string_queries_use_the_automatic_index(url: Option<String>) {
    use roost_api::{IdKind, TablePermissions, TenantSettings};
    use roost_odata::sql::{Dialect, Select, TableRef, Value};
    use roost_storage::items::Query;
    let dir = std::env::temp_dir().join(format!("roost-collation-{}", uuid::Uuid::new_v4().simple()));
    let storage = common::open(&dir, url).await;
    let name = format!("ix-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    storage.create_tenant(&name, "app", "master", &TenantSettings::default()).await.expect("tenant");
    let rec = roost_storage::TableRecord { name: "items".into(), id_kind: IdKind::String, soft_delete: false, permissions: TablePermissions::default() };
    storage.create_table(&name, &rec).await.expect("table");
    let t = storage.tenant(&name).await.expect("load").expect("tenant");
    let table = t.table("items").expect("items");
    t.insert(&table, vec![("title".into(), Value::Text("first".into()))]).await.expect("insert");
    for chunk in 0..10 {
        let values: Vec<String> = (0..500).map(|_| "(?)".to_string()).collect();
        let params: Vec<Value> = (0..500).map(|i| Value::Text(format!("{} {}", PIECES[(chunk * 500 + i) % PIECES.len()], chunk * 500 + i))).collect();
        roost_storage::tsql::run(&t, &format!("insert into items (title) values {}", values.join(", ")), &params).await.expect("rows");
    }
    let order = roost_odata::parse_orderby("title").expect("orderby");
    for _ in 0..3 {
        t.query(&table, &Query { orderby: &order, top: Some(50), ..Default::default() }).await.expect("query");
    }
    let columns = t.columns(&table, true).await.expect("columns");
    let filter = roost_odata::parse_filter("title ge 'é'").expect("filter");
    let explain = match t.db.dialect() {
        Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
        Dialect::Postgres => "EXPLAIN ",
    };
    let mut plans = Vec::new();
    for _ in 0..100 {
        plans.clear();
        // An EXPLAIN does not check the schema cookie: a real statement first brings the pooled reader
        // up to date with the index that was built meanwhile.
        t.query(&table, &Query { orderby: &order, top: Some(1), ..Default::default() }).await.expect("query");
        for f in [None, Some(&filter)] {
            let select = Select {
                table: TableRef { schema: t.schema.as_deref(), name: "items" },
                columns: &columns,
                filter: f,
                extra: &[],
                orderby: &order,
                insertion_order: Some("__seq"),
                top: Some(50),
                skip: 0,
            };
            let mut sql = select.render(columns.as_ref(), t.db.dialect()).expect("render");
            sql.text = format!("{explain}{}", sql.text);
            let (_, rows) = t.db.fetch_dynamic(&sql).await.expect("explain");
            plans.push(format!("{} => {rows:?}", sql.text));
        }
        if plans.iter().all(|p| p.contains("ix_")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let indexes = match t.db.dialect() {
        Dialect::Sqlite => "SELECT name, sql FROM sqlite_schema WHERE type = 'index'",
        Dialect::Postgres => "SELECT indexname::text, indexdef::text FROM pg_indexes",
    };
    let indexes = t.db.fetch_dynamic(&roost_odata::sql::Sql { text: indexes.into(), params: vec![] }).await.map(|(_, r)| format!("{r:?}"));
    assert!(plans.iter().all(|p| p.contains("ix_")), "the ordered queries do not use the automatic index: {plans:?}; indexes: {indexes:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ordered_string_queries_use_the_automatic_index() {
    ordered_string_queries_use_the_automatic_index(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ordered_string_queries_use_the_automatic_index() {
    let Ok(url) = std::env::var("ROOST_TEST_DATABASE_URL") else {
        eprintln!("ROOST_TEST_DATABASE_URL is not set: skipped");
        return;
    };
    ordered_string_queries_use_the_automatic_index(Some(url)).await;
}
