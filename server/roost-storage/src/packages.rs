//! A tenant's npm dependencies in the catalog: the `package.json` it declared (with the packages
//! Roost added), the resolved lock every node installs from, and the lock's hash. Installing is the
//! server's business; this module only stores what an install resolved.

use crate::{now_iso, Result, Storage};
use roost_odata::sql::Dialect;

/// What a tenant depends on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PackageRecord {
    /// The `package.json` text (dependencies only).
    pub manifest: String,
    /// The `package-lock.json` text npm resolved.
    pub lock: String,
    /// SHA-256 hex of `lock`: the local install's cache key.
    pub lock_hash: String,
    /// ISO-8601.
    pub updated_at: String,
}

impl Storage {
    /// A tenant's packages, if it has any.
    pub async fn package_record(&self, tenant: &str) -> Result<Option<PackageRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select manifest, lock, lock_hash, updated_at from tenant_packages where tenant = ?",
            Dialect::Postgres => "select manifest, lock, lock_hash, updated_at from roost.tenant_packages where tenant = $1",
        };
        Ok(self.catalog_query(sql, &[&tenant.to_ascii_lowercase()]).await?.into_iter().next())
    }

    /// Stores (or replaces) a tenant's packages; every node sees the change.
    pub async fn put_packages(&self, tenant: &str, manifest: &str, lock: &str, lock_hash: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "insert into tenant_packages (tenant, manifest, lock, lock_hash, updated_at) values (?, ?, ?, ?, ?) \
                 on conflict (tenant) do update set manifest = excluded.manifest, lock = excluded.lock, lock_hash = excluded.lock_hash, updated_at = excluded.updated_at"
            }
            Dialect::Postgres => {
                "insert into roost.tenant_packages (tenant, manifest, lock, lock_hash, updated_at) values ($1, $2, $3, $4, $5) \
                 on conflict (tenant) do update set manifest = excluded.manifest, lock = excluded.lock, lock_hash = excluded.lock_hash, updated_at = excluded.updated_at"
            }
        };
        let name = tenant.to_ascii_lowercase();
        self.catalog_exec(sql, &[&name, manifest, lock, lock_hash, &now_iso()]).await?;
        self.forget(&name);
        self.changed().await
    }

    /// The lock hashes every tenant's packages use (installs still needed by some tenant).
    pub async fn package_lock_hashes(&self) -> Result<Vec<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select distinct lock_hash from tenant_packages where lock_hash <> ''",
            Dialect::Postgres => "select distinct lock_hash from roost.tenant_packages where lock_hash <> ''",
        };
        self.catalog_strings(sql, &[]).await
    }

    /// Removes a tenant's packages.
    pub async fn delete_packages(&self, tenant: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from tenant_packages where tenant = ?",
            Dialect::Postgres => "delete from roost.tenant_packages where tenant = $1",
        };
        let name = tenant.to_ascii_lowercase();
        self.catalog_exec(sql, &[&name]).await?;
        self.forget(&name);
        self.changed().await
    }
}
