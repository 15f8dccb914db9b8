//! Platform accounts in the catalog: accounts and their roles, tenant ownership, personal API tokens,
//! and portal session records. Only hashes of secrets reach this module (argon2id PHC strings for
//! passwords, SHA-256 hex for tokens and session ids); hashing and policy live in the server.

use crate::{now_iso, Result, Storage, StorageError};
use roost_api::Role;
use roost_odata::sql::Dialect;

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRecord {
    /// Random id.
    pub id: String,
    /// Sign-in e-mail (unique, case-insensitive).
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Its role.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// ISO-8601.
    pub created_at: String,
}

/// A stored personal API token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    /// Random id.
    pub id: String,
    /// Its account.
    pub account_id: String,
    /// What the owner called it.
    pub name: String,
    /// ISO-8601.
    pub created_at: String,
    /// ISO-8601, if ever used.
    pub last_used_at: Option<String>,
}

fn time_text(column: &str) -> String {
    format!("to_char({column} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

impl Storage {
    fn account_select(&self) -> String {
        match self.dialect() {
            Dialect::Sqlite => "select id, email, password_hash, role, created_at from accounts".into(),
            Dialect::Postgres => format!("select id, email, password_hash, role, {} as created_at from roost.accounts", time_text("created_at")),
        }
    }

    /// Creates an account; `AlreadyExists` if the e-mail is taken.
    pub async fn create_account(&self, id: &str, email: &str, password_hash: &str, role: Role) -> Result<AccountRecord> {
        let role = role.as_str();
        if self.account_by_email(email).await?.is_some() {
            return Err(StorageError::AlreadyExists(format!("An account with e-mail '{email}'")));
        }
        let n = match self.dialect() {
            Dialect::Sqlite => {
                self.catalog_exec(
                    "insert into accounts (id, email, password_hash, role, created_at) values (?, ?, ?, ?, ?) on conflict do nothing",
                    &[id, email, password_hash, role, &now_iso()],
                )
                .await?
            }
            Dialect::Postgres => {
                self.catalog_exec(
                    "insert into roost.accounts (id, email, email_lower, password_hash, role) values ($1, $2, $3, $4, $5) on conflict do nothing",
                    &[id, email, &email.to_lowercase(), password_hash, role],
                )
                .await?
            }
        };
        if n == 0 {
            return Err(StorageError::AlreadyExists(format!("An account with e-mail '{email}'")));
        }
        self.account(id).await?.ok_or(StorageError::NotFound)
    }

    /// The account with this id.
    pub async fn account(&self, id: &str) -> Result<Option<AccountRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => format!("{} where id = ?", self.account_select()),
            Dialect::Postgres => format!("{} where id = $1", self.account_select()),
        };
        Ok(self.catalog_query(&sql, &[id]).await?.into_iter().next())
    }

    /// The account with this e-mail (case-insensitive).
    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => format!("{} where email = ?", self.account_select()),
            Dialect::Postgres => format!("{} where email_lower = $1", self.account_select()),
        };
        let email = match self.dialect() {
            Dialect::Sqlite => email.to_string(),
            Dialect::Postgres => email.to_lowercase(),
        };
        Ok(self.catalog_query(&sql, &[&email]).await?.into_iter().next())
    }

    /// Every account, by e-mail.
    pub async fn accounts(&self) -> Result<Vec<AccountRecord>> {
        let sql = format!("{} order by email", self.account_select());
        self.catalog_query(&sql, &[]).await
    }

    /// Replaces an account's password hash.
    pub async fn set_password_hash(&self, id: &str, hash: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "update accounts set password_hash = ? where id = ?",
            Dialect::Postgres => "update roost.accounts set password_hash = $1 where id = $2",
        };
        match self.catalog_exec(sql, &[hash, id]).await? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    /// Deletes an account with its tokens and ownerships; its sessions stop working at their next use.
    pub async fn delete_account(&self, id: &str) -> Result<()> {
        let (owners, tokens, accounts) = match self.dialect() {
            Dialect::Sqlite => {
                ("delete from tenant_owners where account_id = ?", "delete from api_tokens where account_id = ?", "delete from accounts where id = ?")
            }
            Dialect::Postgres => (
                "delete from roost.tenant_owners where account_id = $1",
                "delete from roost.api_tokens where account_id = $1",
                "delete from roost.accounts where id = $1",
            ),
        };
        self.catalog_exec(owners, &[id]).await?;
        self.catalog_exec(tokens, &[id]).await?;
        match self.catalog_exec(accounts, &[id]).await? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    /// Makes `account_id` an owner of `tenant` (idempotent).
    pub async fn add_tenant_owner(&self, tenant: &str, account_id: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "insert into tenant_owners (tenant, account_id) values (?, ?) on conflict do nothing",
            Dialect::Postgres => "insert into roost.tenant_owners (tenant, account_id) values ($1, $2) on conflict do nothing",
        };
        self.catalog_exec(sql, &[&tenant.to_ascii_lowercase(), account_id]).await?;
        Ok(())
    }

    /// Removes an owner of `tenant`.
    pub async fn remove_tenant_owner(&self, tenant: &str, account_id: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from tenant_owners where tenant = ? and account_id = ?",
            Dialect::Postgres => "delete from roost.tenant_owners where tenant = $1 and account_id = $2",
        };
        match self.catalog_exec(sql, &[&tenant.to_ascii_lowercase(), account_id]).await? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    /// The accounts owning `tenant`.
    pub async fn tenant_owners(&self, tenant: &str) -> Result<Vec<AccountRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "select a.id, a.email, a.password_hash, a.role, a.created_at from accounts a join tenant_owners o on o.account_id = a.id where o.tenant = ? order by a.email".to_string()
            }
            Dialect::Postgres => format!(
                "select a.id, a.email, a.password_hash, a.role, {} as created_at from roost.accounts a join roost.tenant_owners o on o.account_id = a.id where o.tenant = $1 order by a.email",
                time_text("a.created_at")
            ),
        };
        self.catalog_query(&sql, &[&tenant.to_ascii_lowercase()]).await
    }

    /// The tenants `account_id` owns (lower-case names).
    pub async fn owned_tenants(&self, account_id: &str) -> Result<Vec<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select tenant from tenant_owners where account_id = ? order by tenant",
            Dialect::Postgres => "select tenant from roost.tenant_owners where account_id = $1 order by tenant",
        };
        self.catalog_strings(sql, &[account_id]).await
    }

    /// Whether `account_id` owns `tenant`.
    pub async fn owns_tenant(&self, account_id: &str, tenant: &str) -> Result<bool> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select tenant from tenant_owners where account_id = ? and tenant = ?",
            Dialect::Postgres => "select tenant from roost.tenant_owners where account_id = $1 and tenant = $2",
        };
        Ok(!self.catalog_strings(sql, &[account_id, &tenant.to_ascii_lowercase()]).await?.is_empty())
    }

    /// Stores a personal API token by the SHA-256 hex of its secret.
    pub async fn create_api_token(&self, id: &str, account_id: &str, name: &str, token_hash: &str) -> Result<TokenRecord> {
        match self.dialect() {
            Dialect::Sqlite => {
                self.catalog_exec(
                    "insert into api_tokens (id, account_id, name, token_hash, created_at) values (?, ?, ?, ?, ?)",
                    &[id, account_id, name, token_hash, &now_iso()],
                )
                .await?
            }
            Dialect::Postgres => {
                self.catalog_exec(
                    "insert into roost.api_tokens (id, account_id, name, token_hash) values ($1, $2, $3, $4)",
                    &[id, account_id, name, token_hash],
                )
                .await?
            }
        };
        self.api_tokens(account_id).await?.into_iter().find(|t| t.id == id).ok_or(StorageError::NotFound)
    }

    /// The tokens of an account, newest first.
    pub async fn api_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "select id, account_id, name, created_at, last_used_at from api_tokens where account_id = ? order by created_at desc, id".to_string()
            }
            Dialect::Postgres => format!(
                "select id, account_id, name, {} as created_at, {} as last_used_at from roost.api_tokens where account_id = $1 order by created_at desc, id",
                time_text("created_at"),
                time_text("last_used_at")
            ),
        };
        self.catalog_query(&sql, &[account_id]).await
    }

    /// The account holding the token whose secret hashes to `token_hash`; marks the token used.
    pub async fn account_by_token(&self, token_hash: &str) -> Result<Option<AccountRecord>> {
        let (find, touch) = match self.dialect() {
            Dialect::Sqlite => ("select account_id from api_tokens where token_hash = ?", "update api_tokens set last_used_at = ? where token_hash = ?"),
            Dialect::Postgres => (
                "select account_id from roost.api_tokens where token_hash = $1",
                "update roost.api_tokens set last_used_at = $1::timestamptz where token_hash = $2",
            ),
        };
        let Some(account_id) = self.catalog_strings(find, &[token_hash]).await?.into_iter().next() else { return Ok(None) };
        self.catalog_exec(touch, &[&now_iso(), token_hash]).await?;
        self.account(&account_id).await
    }

    /// Revokes a token of an account.
    pub async fn delete_api_token(&self, account_id: &str, id: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from api_tokens where account_id = ? and id = ?",
            Dialect::Postgres => "delete from roost.api_tokens where account_id = $1 and id = $2",
        };
        match self.catalog_exec(sql, &[account_id, id]).await? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    /// Stores a session record (JSON) under the hash of its id, expiring at `expires_at` (Unix seconds).
    pub async fn save_session(&self, id_hash: &str, data: &str, expires_at: i64) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "insert into portal_sessions (id_hash, data, expires_at) values (?, ?, cast(? as integer)) on conflict (id_hash) do update set data = excluded.data, expires_at = excluded.expires_at",
            Dialect::Postgres => "insert into roost.portal_sessions (id_hash, data, expires_at) values ($1, $2, $3::bigint) on conflict (id_hash) do update set data = excluded.data, expires_at = excluded.expires_at",
        };
        self.catalog_exec(sql, &[id_hash, data, &expires_at.to_string()]).await?;
        Ok(())
    }

    /// Creates a session record; `false` if the id is taken.
    pub async fn create_session(&self, id_hash: &str, data: &str, expires_at: i64) -> Result<bool> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "insert into portal_sessions (id_hash, data, expires_at) values (?, ?, cast(? as integer)) on conflict do nothing",
            Dialect::Postgres => "insert into roost.portal_sessions (id_hash, data, expires_at) values ($1, $2, $3::bigint) on conflict do nothing",
        };
        Ok(self.catalog_exec(sql, &[id_hash, data, &expires_at.to_string()]).await? == 1)
    }

    /// The session record under `id_hash` unless it expired before `now` (Unix seconds).
    pub async fn load_session(&self, id_hash: &str, now: i64) -> Result<Option<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "select data from portal_sessions where id_hash = ? and expires_at > cast(? as integer)",
            Dialect::Postgres => "select data from roost.portal_sessions where id_hash = $1 and expires_at > $2::bigint",
        };
        Ok(self.catalog_strings(sql, &[id_hash, &now.to_string()]).await?.into_iter().next())
    }

    /// Deletes a session record.
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from portal_sessions where id_hash = ?",
            Dialect::Postgres => "delete from roost.portal_sessions where id_hash = $1",
        };
        self.catalog_exec(sql, &[id_hash]).await?;
        Ok(())
    }

    /// Deletes sessions that expired before `now` (Unix seconds); returns how many.
    pub async fn prune_sessions(&self, now: i64) -> Result<u64> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "delete from portal_sessions where expires_at <= cast(? as integer)",
            Dialect::Postgres => "delete from roost.portal_sessions where expires_at <= $1::bigint",
        };
        self.catalog_exec(sql, &[&now.to_string()]).await
    }
}
