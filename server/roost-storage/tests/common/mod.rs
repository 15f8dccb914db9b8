//! What several storage test binaries share.

use roost_storage::{Storage, StorageConfig};
use std::path::Path;
use std::sync::Arc;

/// Storage on `dir` (and on the PostgreSQL database `url`, if given), migrated.
pub(crate) async fn open(dir: &Path, url: Option<String>) -> Arc<Storage> {
    Storage::open(&StorageConfig {
        data_dir: dir.to_path_buf(),
        database_url: url,
        pg_max_connections: 8,
        listen_for_changes: false,
        statement_timeout_ms: 60_000,
    })
    .await
    .map(Arc::new)
    .expect("open")
}
