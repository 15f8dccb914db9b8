//! A tenant's identity providers in the catalog (the rows; what they mean is the server's
//! `identity` module). Names are stored lower-case: `/login/{name}` finds them case-insensitively.

use crate::{now_iso, Result, Storage};
use roost_odata::sql::Dialect;

/// One identity provider of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderRecord {
    /// The name in `/login/{name}`, lower-case.
    pub name: String,
    /// The preset (`google`, `microsoftaccount`, `aad`, `apple`, `facebook`) or `oidc`.
    pub kind: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret, sealed with the platform's identity key (empty: none).
    pub secret_sealed: String,
    /// The secret's last characters, shown instead of it.
    pub secret_hint: String,
    /// The rest of the configuration, as JSON.
    pub config: String,
    /// ISO-8601.
    pub updated_at: String,
}

const COLUMNS: &str = "name, kind, client_id, secret_sealed, secret_hint, config, updated_at";

impl Storage {
    /// A tenant's identity providers, by name.
    pub async fn providers(&self, tenant: &str) -> Result<Vec<ProviderRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => format!("select {COLUMNS} from identity_providers where tenant = ? order by name"),
            Dialect::Postgres => format!("select {COLUMNS} from roost.identity_providers where tenant = $1 order by name"),
        };
        self.catalog_query(&sql, &[&tenant.to_ascii_lowercase()]).await
    }

    /// Stores (or replaces) one provider; every node sees the change.
    pub async fn put_provider(&self, tenant: &str, p: &ProviderRecord) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "insert into identity_providers (tenant, name, kind, client_id, secret_sealed, secret_hint, config, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?) \
                 on conflict (tenant, name) do update set kind = excluded.kind, client_id = excluded.client_id, secret_sealed = excluded.secret_sealed, \
                 secret_hint = excluded.secret_hint, config = excluded.config, updated_at = excluded.updated_at"
            }
            Dialect::Postgres => {
                "insert into roost.identity_providers (tenant, name, kind, client_id, secret_sealed, secret_hint, config, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8) \
                 on conflict (tenant, name) do update set kind = excluded.kind, client_id = excluded.client_id, secret_sealed = excluded.secret_sealed, \
                 secret_hint = excluded.secret_hint, config = excluded.config, updated_at = excluded.updated_at"
            }
        };
        let tenant = tenant.to_ascii_lowercase();
        let name = p.name.to_ascii_lowercase();
        self.catalog_exec(sql, &[&tenant, &name, &p.kind, &p.client_id, &p.secret_sealed, &p.secret_hint, &p.config, &now_iso()]).await?;
        self.forget(&tenant);
        self.changed().await
    }

    /// Removes one provider; `false` if there was none of that name.
    pub async fn delete_provider(&self, tenant: &str, name: &str) -> Result<bool> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from identity_providers where tenant = ? and name = ?",
            Dialect::Postgres => "delete from roost.identity_providers where tenant = $1 and name = $2",
        };
        let tenant = tenant.to_ascii_lowercase();
        let n = self.catalog_exec(sql, &[&tenant, &name.to_ascii_lowercase()]).await?;
        self.forget(&tenant);
        self.changed().await?;
        Ok(n > 0)
    }
}

impl Storage {
    /// The tenant's user-token signing secret, if its tokens were ever revoked.
    pub async fn token_secret(&self, tenant: &str) -> Result<Option<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select secret from tenant_token_secrets where tenant = ?",
            Dialect::Postgres => "select secret from roost.tenant_token_secrets where tenant = $1",
        };
        Ok(self.catalog_strings(sql, &[&tenant.to_ascii_lowercase()]).await?.into_iter().next())
    }

    /// Replaces the tenant's user-token signing secret (`None`: back to the master key); every node
    /// sees the change.
    pub async fn set_token_secret(&self, tenant: &str, secret: Option<&str>) -> Result<()> {
        let tenant = tenant.to_ascii_lowercase();
        match secret {
            Some(secret) => {
                let sql = match self.dialect() {
                    Dialect::Sqlite => {
                        "insert into tenant_token_secrets (tenant, secret, rotated_at) values (?, ?, ?) \
                         on conflict (tenant) do update set secret = excluded.secret, rotated_at = excluded.rotated_at"
                    }
                    Dialect::Postgres => {
                        "insert into roost.tenant_token_secrets (tenant, secret, rotated_at) values ($1, $2, $3) \
                         on conflict (tenant) do update set secret = excluded.secret, rotated_at = excluded.rotated_at"
                    }
                };
                self.catalog_exec(sql, &[&tenant, secret, &now_iso()]).await?;
            }
            None => {
                let sql = match self.dialect() {
                    Dialect::Sqlite => "delete from tenant_token_secrets where tenant = ?",
                    Dialect::Postgres => "delete from roost.tenant_token_secrets where tenant = $1",
                };
                self.catalog_exec(sql, &[&tenant]).await?;
            }
        }
        self.forget(&tenant);
        self.changed().await
    }
}
