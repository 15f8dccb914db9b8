//! Platform accounts: argon2id passwords, personal API tokens, the sign-in rate limit, and who may
//! call which `/manage/v1` route ([`Access`], [`Principal::may`]). Shared by the CLI
//! (`roost admin create`) and the HTTP layer.

use crate::manage::ManageError;
use roost_api::{AccountOut, ApiTokenOut, Role};
use roost_storage::accounts::{AccountRecord, TokenRecord};
use roost_storage::{Storage, StorageError};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 10;

/// Who is calling `/manage/v1`.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account; `None` for the platform admin token of the configuration.
    pub account: Option<AccountOut>,
    /// Its role.
    pub role: Role,
    /// Signed in through a portal session (so state changes need the CSRF token).
    pub via_session: bool,
}

/// What a `/manage/v1` route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any signed-in caller (their own session, password, tokens).
    Signed,
    /// Any role; the answer is filtered to what the caller may see (tenant list).
    Listing,
    /// Admins and owners (create a tenant).
    CreateTenant,
    /// Admins, owners of the tenant, and support staff: monitoring, logs and job runs.
    Monitor,
    /// Admins and owners of the tenant: data, scripts, keys and settings.
    Tenant,
    /// Admins and support staff: the platform's monitoring view of every tenant.
    Watch,
    /// Admins only: accounts.
    Admin,
}

impl Principal {
    /// Whether the caller may use a route needing `access` on `tenant` (the route's tenant, if any).
    pub async fn may(&self, storage: &Storage, access: Access, tenant: Option<&str>) -> Result<bool, ManageError> {
        Ok(match (self.role, access) {
            (Role::Admin, _) | (_, Access::Signed | Access::Listing) => true,
            (Role::Owner, Access::CreateTenant) => true,
            (Role::Support, Access::Monitor | Access::Watch) => true,
            (Role::Owner, Access::Monitor | Access::Tenant) => match (&self.account, tenant) {
                (Some(a), Some(t)) => storage.owns_tenant(&a.id, t).await.map_err(internal)?,
                _ => false,
            },
            _ => false,
        })
    }
}

fn internal(e: StorageError) -> ManageError {
    ManageError::Internal(e.to_string())
}

/// The wire form of an account.
pub fn account_out(r: &AccountRecord) -> AccountOut {
    AccountOut { id: r.id.clone(), email: r.email.clone(), role: r.role, created_at: r.created_at.clone() }
}

fn token_out(r: TokenRecord, token: Option<String>) -> ApiTokenOut {
    ApiTokenOut { id: r.id, name: r.name, created_at: r.created_at, last_used_at: r.last_used_at, token }
}

/// SHA-256 hex of a secret (tokens, session ids): what the catalog stores.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id PHC string of `password`.
pub async fn hash_password(password: String) -> Result<String, ManageError> {
    crate::passwords::hash(password).await.map_err(ManageError::Internal)
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify_password(password: String, hash: String) -> bool {
    crate::passwords::verify(password, hash).await
}

fn check_password(password: &str) -> Result<(), ManageError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ManageError::BadInput(format!("A password must have at least {MIN_PASSWORD} characters.")));
    }
    Ok(())
}

/// Creates an account (`roost admin create`, `POST /manage/v1/accounts`).
pub async fn create_account(storage: &Storage, email: &str, password: &str, role: Role) -> Result<AccountOut, ManageError> {
    let email = email.trim();
    if email.len() > 254 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') || email.chars().any(char::is_whitespace) {
        return Err(ManageError::BadInput(format!("'{email}' is not an e-mail address.")));
    }
    check_password(password)?;
    let hash = hash_password(password.to_string()).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    match storage.create_account(&id, email, &hash, role).await {
        Ok(r) => {
            tracing::info!(account.email = %email, account.role = role.as_str(), "Created account");
            Ok(account_out(&r))
        }
        Err(StorageError::AlreadyExists(what)) => Err(ManageError::Conflict(what)),
        Err(e) => Err(internal(e)),
    }
}

/// Every account.
pub async fn list_accounts(storage: &Storage) -> Result<Vec<AccountOut>, ManageError> {
    Ok(storage.accounts().await.map_err(internal)?.iter().map(account_out).collect())
}

/// Deletes an account.
pub async fn delete_account(storage: &Storage, id: &str) -> Result<(), ManageError> {
    storage.delete_account(id).await.map_err(|e| ManageError::from_storage(e, || format!("Account '{id}'")))
}

/// Changes a password after checking the current one.
pub async fn change_password(storage: &Storage, account_id: &str, current: &str, new: &str) -> Result<(), ManageError> {
    let account = storage.account(account_id).await.map_err(internal)?.ok_or_else(|| ManageError::NotFound("The account".into()))?;
    if !verify_password(current.to_string(), account.password_hash).await {
        return Err(ManageError::BadInput("The current password is wrong.".into()));
    }
    check_password(new)?;
    let hash = hash_password(new.to_string()).await?;
    storage.set_password_hash(account_id, &hash).await.map_err(internal)
}

/// Creates a personal API token; the answer carries the secret, which is never shown again.
pub async fn create_token(storage: &Storage, account_id: &str, name: &str) -> Result<ApiTokenOut, ManageError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ManageError::BadInput("A token needs a name of 1 to 100 characters.".into()));
    }
    let secret = format!("roost_pat_{}", crate::auth::generate_key());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let r = storage.create_api_token(&id, account_id, name, &secret_hash(&secret)).await.map_err(internal)?;
    Ok(token_out(r, Some(secret)))
}

/// The tokens of an account (without secrets).
pub async fn list_tokens(storage: &Storage, account_id: &str) -> Result<Vec<ApiTokenOut>, ManageError> {
    Ok(storage.api_tokens(account_id).await.map_err(internal)?.into_iter().map(|t| token_out(t, None)).collect())
}

/// Revokes a token.
pub async fn delete_token(storage: &Storage, account_id: &str, id: &str) -> Result<(), ManageError> {
    storage.delete_api_token(account_id, id).await.map_err(|e| ManageError::from_storage(e, || format!("Token '{id}'")))
}

/// The account holding a personal API token.
pub async fn account_by_token(storage: &Storage, token: &str) -> Result<Option<AccountOut>, ManageError> {
    Ok(storage.account_by_token(&secret_hash(token)).await.map_err(internal)?.as_ref().map(account_out))
}

/// Failed sign-ins allowed per e-mail within [`WINDOW`].
const PER_EMAIL: usize = 5;
/// Failed sign-ins allowed per client address within [`WINDOW`].
const PER_ADDRESS: usize = 20;
/// The rate-limit window.
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed sign-ins per e-mail and per client address, counted in the catalog so the limit holds
/// across every node (N nodes must not give an attacker N times the guesses).
pub struct SignInLimiter;

impl SignInLimiter {
    fn keys(email: &str, address: &str) -> [(String, usize); 2] {
        [(format!("signin\0e\0{}", normalize_email(email)), PER_EMAIL), (format!("signin\0a\0{address}"), PER_ADDRESS)]
    }

    /// `Some(seconds to wait)` when `email` or `address` has too many recent failures.
    pub async fn blocked(storage: &Storage, email: &str, address: &str) -> Result<Option<u64>, ManageError> {
        storage.rate_limit(&Self::keys(email, address), WINDOW.as_millis() as i64, false).await.map_err(internal)
    }

    /// Records a failed sign-in.
    pub async fn failed(storage: &Storage, email: &str, address: &str) -> Result<(), ManageError> {
        let keys = Self::keys(email, address).map(|(k, _)| k);
        storage.rate_count(&keys).await.map_err(internal)
    }

    /// Forgets the failures of `email` after a successful sign-in.
    pub async fn succeeded(storage: &Storage, email: &str) -> Result<(), ManageError> {
        storage.rate_forget(&Self::keys(email, "")[0].0).await.map_err(internal)
    }
}

/// A fixed argon2id hash verified when the e-mail is unknown, so that answer takes as long as a
/// wrong password.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The one form of an e-mail address that the sign-in limiter and the account lookup both use:
/// trimmed and lower-cased, so padding or case cannot open a fresh failure budget.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks an e-mail and password; `None` if they do not match an account.
pub async fn authenticate(storage: &Storage, email: &str, password: &str) -> Result<Option<AccountOut>, ManageError> {
    let account = storage.account_by_email(&normalize_email(email)).await.map_err(internal)?;
    let hash = match &account {
        Some(a) => a.password_hash.clone(),
        None => match DUMMY_HASH.get() {
            Some(h) => h.clone(),
            None => {
                let h = hash_password("not a password of anyone".into()).await?;
                DUMMY_HASH.get_or_init(|| h).clone()
            }
        },
    };
    let ok = verify_password(password.to_string(), hash).await;
    Ok(account.filter(|_| ok).as_ref().map(account_out))
}
