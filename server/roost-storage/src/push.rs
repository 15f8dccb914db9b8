//! A tenant's push registrations and push credentials in the catalog (the rows; what they mean is
//! the server's `push` module). Registration ids are reserved (platform `''`) before their first
//! `PUT` fills them, as Notification Hubs' `createRegistrationId` did.

use crate::{now_iso, Result, Storage};
use roost_odata::sql::Dialect;

/// One device registration of a tenant (protocol.md §7.2). JSON members are stored as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct RegistrationRecord {
    /// The registration id.
    pub id: String,
    /// `webpush`, `gcm`, `fcm` or `apns`; `''` while only reserved.
    pub platform: String,
    /// The handle: a Web Push subscription's endpoint, an FCM registration token, an APNs device token.
    pub device_id: String,
    /// Web Push: `{"p256dh","auth"}` as JSON; else `''`.
    pub keys: String,
    /// The tags, a JSON array of strings.
    pub tags: String,
    /// A template registration's name (else `''`).
    pub template_name: String,
    /// Its template body (else `''`).
    pub template_body: String,
    /// Its headers (a JSON object, else `''`).
    pub headers: String,
    /// APNs template expiry (else `''`).
    pub expiry: String,
    /// The `X-ZUMO-INSTALLATION-ID` of the device that registered (else `''`).
    pub installation_id: String,
    /// The user id of the token it registered with (else `''`).
    pub user_id: String,
    /// ISO-8601.
    pub created_at: String,
    /// ISO-8601.
    pub updated_at: String,
}

/// A tenant's Web Push key pair.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VapidRecord {
    /// The public key, base64url (65-byte uncompressed P-256 point).
    pub vapid_public: String,
    /// The private key, sealed by the server.
    pub vapid_private: String,
    /// ISO-8601.
    pub updated_at: String,
}

const COLUMNS: &str = "id, platform, device_id, keys, tags, template_name, template_body, headers, expiry, installation_id, user_id, created_at, updated_at";

/// The statement in the catalog's dialect: `{p}` is the catalog schema's prefix, `?` a parameter.
fn dialect_sql(dialect: Dialect, sql: &str) -> String {
    match dialect {
        Dialect::Sqlite => sql.replace("{p}", ""),
        Dialect::Postgres => {
            let mut out = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for c in sql.replace("{p}", "roost.").chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

impl Storage {
    fn push_sql(&self, sql: &str) -> String {
        dialect_sql(self.dialect(), sql)
    }

    /// Reserves a registration id (platform `''`).
    pub async fn reserve_registration(&self, tenant: &str, id: &str) -> Result<()> {
        let now = now_iso();
        let sql =
            self.push_sql(&format!("insert into {{p}}push_registrations (tenant, {COLUMNS}) values (?, ?, '', '', '', '[]', '', '', '', '', '', '', ?, ?)"));
        self.catalog_exec(&sql, &[&tenant.to_ascii_lowercase(), id, &now, &now]).await?;
        Ok(())
    }

    /// One registration (reserved or filled).
    pub async fn registration(&self, tenant: &str, id: &str) -> Result<Option<RegistrationRecord>> {
        let sql = self.push_sql(&format!("select {COLUMNS} from {{p}}push_registrations where tenant = ? and id = ?"));
        Ok(self.catalog_query(&sql, &[&tenant.to_ascii_lowercase(), id]).await?.into_iter().next())
    }

    /// Fills (or replaces) a registration the tenant reserved; `false` if the id is not one of the
    /// tenant's.
    pub async fn put_registration(&self, tenant: &str, r: &RegistrationRecord) -> Result<bool> {
        let sql = self.push_sql(
            "update {p}push_registrations set platform = ?, device_id = ?, keys = ?, tags = ?, template_name = ?, template_body = ?, headers = ?, \
             expiry = ?, installation_id = ?, user_id = ?, updated_at = ? where tenant = ? and id = ?",
        );
        let n = self
            .catalog_exec(
                &sql,
                &[
                    &r.platform,
                    &r.device_id,
                    &r.keys,
                    &r.tags,
                    &r.template_name,
                    &r.template_body,
                    &r.headers,
                    &r.expiry,
                    &r.installation_id,
                    &r.user_id,
                    &now_iso(),
                    &tenant.to_ascii_lowercase(),
                    &r.id,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// The filled registrations of a tenant, optionally of one platform and handle, oldest first.
    pub async fn registrations(&self, tenant: &str, platform: Option<&str>, device_id: Option<&str>) -> Result<Vec<RegistrationRecord>> {
        let tenant = tenant.to_ascii_lowercase();
        let mut sql = format!("select {COLUMNS} from {{p}}push_registrations where tenant = ? and platform <> ''");
        let mut binds: Vec<&str> = vec![&tenant];
        if let Some(p) = platform {
            sql += " and platform = ?";
            binds.push(p);
        }
        if let Some(d) = device_id {
            sql += " and device_id = ?";
            binds.push(d);
        }
        sql += " order by created_at, id";
        self.catalog_query(&self.push_sql(&sql), &binds).await
    }

    /// How many registrations (reserved ones too) a tenant has.
    pub async fn registration_count(&self, tenant: &str) -> Result<u64> {
        let sql = self.push_sql("select cast(count(*) as text) from {p}push_registrations where tenant = ?");
        Ok(self.catalog_strings(&sql, &[&tenant.to_ascii_lowercase()]).await?.first().and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    /// Forgets the tenant's ids reserved before `before` (ISO-8601) and never filled.
    pub async fn prune_reserved_registrations(&self, tenant: &str, before: &str) -> Result<u64> {
        let sql = self.push_sql("delete from {p}push_registrations where tenant = ? and platform = '' and created_at < ?");
        self.catalog_exec(&sql, &[&tenant.to_ascii_lowercase(), before]).await
    }

    /// Removes a registration; `false` if there was none.
    pub async fn delete_registration(&self, tenant: &str, id: &str) -> Result<bool> {
        let sql = self.push_sql("delete from {p}push_registrations where tenant = ? and id = ?");
        Ok(self.catalog_exec(&sql, &[&tenant.to_ascii_lowercase(), id]).await? > 0)
    }

    /// The tenant's Web Push key pair, if it has one.
    pub async fn vapid(&self, tenant: &str) -> Result<Option<VapidRecord>> {
        let sql = self.push_sql("select vapid_public, vapid_private, updated_at from {p}push_credentials where tenant = ?");
        Ok(self.catalog_query(&sql, &[&tenant.to_ascii_lowercase()]).await?.into_iter().next())
    }

    /// Stores a key pair unless the tenant has one (`replace`: replaces it, a rotation); the pair
    /// the tenant has afterwards.
    pub async fn put_vapid(&self, tenant: &str, public: &str, private_sealed: &str, replace: bool) -> Result<VapidRecord> {
        let tenant = tenant.to_ascii_lowercase();
        let conflict = if replace {
            "do update set vapid_public = excluded.vapid_public, vapid_private = excluded.vapid_private, updated_at = excluded.updated_at"
        } else {
            "do nothing"
        };
        let sql = self.push_sql(&format!(
            "insert into {{p}}push_credentials (tenant, vapid_public, vapid_private, updated_at) values (?, ?, ?, ?) on conflict (tenant) {conflict}"
        ));
        self.catalog_exec(&sql, &[&tenant, public, private_sealed, &now_iso()]).await?;
        self.vapid(&tenant).await?.ok_or_else(|| crate::StorageError::Internal("the push key pair was not stored".into()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_numbered_on_postgres() {
        let sql = super::dialect_sql(roost_odata::sql::Dialect::Postgres, "select 1 from {p}t where a = ? and b = ?");
        assert_eq!(sql, "select 1 from roost.t where a = $1 and b = $2");
        assert_eq!(super::dialect_sql(roost_odata::sql::Dialect::Sqlite, "select 1 from {p}t where a = ?"), "select 1 from t where a = ?");
    }
}
