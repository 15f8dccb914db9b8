//! The storage conformance story: one tenant's whole life through the storage API (no HTTP), on a
//! temp SQLite folder and on the PostgreSQL server named by ROOST_TEST_DATABASE_URL.

use roost_api::{IdKind, TablePermissions, TenantSettings};
use roost_odata::sql::Value;
use roost_storage::items::{Query, SystemProps, WriteError};
use roost_storage::{Storage, StorageConfig, StorageError, TableRecord};

async fn story(database_url: Option<String>) {
    let dir = std::env::temp_dir().join(format!("roost-story-{}", uuid::Uuid::new_v4().simple()));
    let storage =
        Storage::open(&StorageConfig { data_dir: dir.clone(), database_url, pg_max_connections: 4, listen_for_changes: false, statement_timeout_ms: 60_000 })
            .await
            .expect("open");
    let name = format!("story-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    // Create a tenant and a soft-delete table.
    storage.create_tenant(&name, "app", "master", &TenantSettings::default()).await.expect("tenant");
    let rec = TableRecord { name: "Notes".into(), id_kind: IdKind::String, soft_delete: true, permissions: TablePermissions::default() };
    storage.create_table(&name, &rec).await.expect("table");
    let tenant = storage.tenant(&name.to_uppercase()).await.expect("load").expect("exists");
    let table = tenant.table("notes").expect("case-insensitive lookup");

    // Insert; a new member becomes a column; the id collides case-insensitively.
    let w = tenant.insert(&table, vec![("id".into(), Value::Text("n1".into())), ("text".into(), Value::Text("hello".into()))]).await.expect("insert");
    assert_eq!(w.id, Value::Text("n1".into()));
    let dup = tenant.insert(&table, vec![("id".into(), Value::Text("N1".into()))]).await;
    assert!(matches!(dup, Err(StorageError::Duplicate)), "{dup:?}");
    tenant.insert(&table, vec![("id".into(), Value::Text("n2".into())), ("stars".into(), Value::Number(4.0))]).await.expect("dynamic column");
    let cols = tenant.columns(&table, true).await.expect("columns");
    assert!(cols.iter().any(|c| c.name == "stars"));

    // Query with a filter and an order.
    let filter = roost_odata::parse_filter("stars ge 3 or TEXT eq 'HELLO'").expect("parse");
    let order = roost_odata::parse_orderby("stars desc").expect("parse");
    let (rows, count) =
        tenant.query(&table, &Query { filter: Some(&filter), orderby: &order, top: Some(10), count: true, ..Default::default() }).await.expect("query");
    assert_eq!(count, Some(2));
    assert_eq!(rows[0].iter().find(|(n, _)| n == "id").map(|(_, v)| v.clone()), Some(Value::Text("n2".into())));

    // A stale version conflicts and hands back the current row; the right one updates.
    let stale = vec![0u8; 8];
    let conflict = tenant.update(&table, &Value::Text("n1".into()), vec![("text".into(), Value::Text("x".into()))], Some(&stale), false).await;
    let Err(WriteError::Conflict(current)) = conflict else { panic!("expected a conflict: {conflict:?}") };
    let Some((_, Value::Bytes(version))) = current.iter().find(|(n, _)| n == "__version") else { panic!("no version") };
    tenant.update(&table, &Value::Text("n1".into()), vec![("text".into(), Value::Text("y".into()))], Some(version), false).await.expect("update");

    // Soft delete hides the row; including deleted rows shows it.
    tenant.delete(&table, &Value::Text("n1".into()), None).await.expect("delete");
    let (rows, _) = tenant.query(&table, &Query { top: Some(10), ..Default::default() }).await.expect("query");
    assert_eq!(rows.len(), 1);
    let all = Query { top: Some(10), include_deleted: true, system: SystemProps::ALL, ..Default::default() };
    let (rows, _) = tenant.query(&table, &all).await.expect("query");
    assert_eq!(rows.len(), 2);

    // Drop the table, then the tenant.
    storage.drop_table(&name, "NOTES").await.expect("drop");
    assert!(storage.tenant(&name).await.expect("load").expect("exists").table("notes").is_none());
    storage.delete_tenant(&name).await.expect("delete tenant");
    assert!(storage.tenant(&name).await.expect("load").is_none());
    if std::env::var_os("ROOST_TEST_KEEP_DB").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_sqlite() {
    story(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_postgres() {
    let url = std::env::var("ROOST_TEST_DATABASE_URL").expect("ROOST_TEST_DATABASE_URL is not set: scripts/test starts a PostgreSQL server");
    story(Some(url)).await;
}

/// Two processes on one SQLite data folder (the server and the CLI): each sees the other's catalog
/// changes at once, through its cache, in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_storages_of_one_sqlite_folder_see_each_others_changes_at_once() {
    let dir = std::env::temp_dir().join(format!("roost-shared-{}", uuid::Uuid::new_v4().simple()));
    let config = StorageConfig { data_dir: dir.clone(), database_url: None, pg_max_connections: 4, listen_for_changes: false, statement_timeout_ms: 60_000 };
    let server = Storage::open(&config).await.expect("open");
    let cli = Storage::open(&config).await.expect("open again");
    server.create_tenant("shared", "app", "master", &TenantSettings::default()).await.expect("tenant");
    assert!(cli.tenant("shared").await.expect("load").expect("the CLI sees the new tenant").table("notes").is_none());
    let rec = TableRecord { name: "notes".into(), id_kind: IdKind::String, soft_delete: false, permissions: TablePermissions::default() };
    // The server has the tenant cached; a table the CLI creates is there on its next lookup.
    assert!(server.tenant("shared").await.expect("load").expect("exists").table("notes").is_none());
    cli.create_table("shared", &rec).await.expect("table");
    assert!(server.tenant("shared").await.expect("load").expect("exists").table("notes").is_some(), "the server's cache missed the CLI's change");
    server.drop_table("shared", "notes").await.expect("drop");
    assert!(cli.tenant("shared").await.expect("load").expect("exists").table("notes").is_none(), "the CLI's cache missed the server's change");
    cli.delete_tenant("shared").await.expect("delete");
    assert!(server.tenant("shared").await.expect("load").is_none());
    let _ = std::fs::remove_dir_all(dir);
}
