//! PostgreSQL's half of the tenant string collation agrees with the Rust half SQLite uses
//! (`roost_storage::collation`): `roost.fold` folds as `fold` does, and `roost.ci_as` orders and
//! equates as `compare` does, over strings built from pieces that stress them (accents precomposed and
//! not, sigma, ß, ligatures, full-width forms, Hangul, scripts side by side). Needs
//! ROOST_TEST_DATABASE_URL (a database migrated by Roost; the test opens storage to migrate it).

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
    let storage = roost_storage::Storage::open(&roost_storage::StorageConfig {
        data_dir: dir.clone(),
        database_url: Some(url.clone()),
        pg_max_connections: 2,
        listen_for_changes: false,
        statement_timeout_ms: 60_000,
    })
    .await
    .expect("open");
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
