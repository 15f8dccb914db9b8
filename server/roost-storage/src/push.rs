//! A tenant's push registrations and push credentials in the catalog (the rows; what they mean is
//! the server's `push` module). Registration ids are reserved (platform `''`) before their first
//! `PUT` fills them, as Notification Hubs' `createRegistrationId` did.

use crate::{now_iso, Result, Storage};
use roost_odata::sql::Dialect;

/// One device registration of a tenant (protocol.md §7.2). JSON members are stored as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
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
pub(crate) fn dialect_sql(dialect: Dialect, sql: &str) -> String {
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

    /// Inserts a whole registration as it was (a restore).
    pub async fn restore_registration(&self, tenant: &str, r: &RegistrationRecord) -> Result<()> {
        let sql = self.push_sql(&format!("insert into {{p}}push_registrations (tenant, {COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        let tenant = tenant.to_ascii_lowercase();
        let binds: [&str; 14] = [
            &tenant,
            &r.id,
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
            &r.created_at,
            &r.updated_at,
        ];
        self.catalog_exec(&sql, &binds).await?;
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

/// One `push.send` and what became of its notifications.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct SendRecord {
    /// The send's id.
    pub id: String,
    /// `template`, `webpush`, `gcm` or `apns` (which registrations it was for).
    pub platform: String,
    /// The tag expression (`''`: every registration).
    pub tags: String,
    /// ISO-8601.
    pub created_at: String,
    /// Notifications queued (one per registration).
    pub queued: i64,
    /// Delivered (the push service accepted them).
    pub delivered: i64,
    /// Attempts that are retried later (429, 5xx, no answer).
    pub retried: i64,
    /// Dropped when their time to live ran out before delivery.
    pub expired: i64,
    /// Refused by the push service, or out of attempts.
    pub failed: i64,
    /// Their registration was gone at the push service (404/410): it is removed.
    pub pruned: i64,
}

/// One notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct OutboxRow {
    /// Its row id (0 before it is stored).
    pub id: i64,
    /// The tenant.
    pub tenant: String,
    /// The send it belongs to.
    pub send_id: String,
    /// The registration it goes to.
    pub registration_id: String,
    /// The registration's platform.
    pub platform: String,
    /// Where it goes (the Web Push endpoint, the FCM or APNs token).
    pub endpoint: String,
    /// Web Push: the subscription's keys (JSON).
    pub keys: String,
    /// The payload, as sent.
    pub payload: String,
    /// Time to live, seconds.
    pub ttl: i64,
    /// Web Push `Urgency` (`''`: none).
    pub urgency: String,
    /// Web Push `Topic` (`''`: none).
    pub topic: String,
    /// When it expires, epoch milliseconds.
    pub expires_at: i64,
    /// When it is next due, epoch milliseconds.
    pub next_at: i64,
    /// Attempts so far.
    pub attempts: i64,
}

/// What became of one claimed notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the push service.
    Delivered,
    /// The registration is gone (removed with it).
    Pruned,
    /// Refused, or out of attempts.
    Failed,
    /// Its time to live ran out.
    Expired,
    /// Tried again at this time (epoch milliseconds).
    Retry(i64),
}

const OUTBOX_COLUMNS: &str = "id, tenant, send_id, registration_id, platform, endpoint, keys, payload, ttl, urgency, topic, expires_at, next_at, attempts";
/// Outbox rows per insert statement.
const INSERT_CHUNK: usize = 400;

use roost_odata::sql::Value;
use serde_json::Value as Json;

impl Storage {
    async fn push_exec(&self, sql: &str, params: Vec<Value>) -> Result<u64> {
        let sql = self.push_sql(sql);
        Ok(match &self.catalog {
            crate::Db::Sqlite(p) => sqlx::query_with(&sql, crate::db::sqlite_args(&params)?).execute(p).await?.rows_affected(),
            crate::Db::Postgres(p) => sqlx::query_with(&sql, crate::db::pg_args(&params)?).execute(p).await?.rows_affected(),
            crate::Db::SqliteEngine(_) => return Err(crate::StorageError::Internal("the catalog is never a tenant engine".into())),
        })
    }

    async fn push_rows<T>(&self, sql: &str, params: Vec<Value>) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let sql = self.push_sql(sql);
        Ok(match &self.catalog {
            crate::Db::Sqlite(p) => sqlx::query_as_with(&sql, crate::db::sqlite_args(&params)?).fetch_all(p).await?,
            crate::Db::Postgres(p) => sqlx::query_as_with(&sql, crate::db::pg_args(&params)?).fetch_all(p).await?,
            crate::Db::SqliteEngine(_) => return Err(crate::StorageError::Internal("the catalog is never a tenant engine".into())),
        })
    }

    /// Stores a send and its notifications in one transaction: when this returns, every one of them
    /// is durable (or none is).
    pub async fn enqueue_push(&self, tenant: &str, send: &SendRecord, rows: &[OutboxRow]) -> Result<()> {
        let tenant = tenant.to_ascii_lowercase();
        let send_sql = self.push_sql("insert into {p}push_sends (tenant, id, platform, tags, created_at, queued) values (?, ?, ?, ?, ?, ?)");
        let send_params = vec![
            Value::Text(tenant.clone()),
            Value::Text(send.id.clone()),
            Value::Text(send.platform.clone()),
            Value::Text(send.tags.clone()),
            Value::Text(send.created_at.clone()),
            Value::Int(rows.len() as i64),
        ];
        let mut statements = vec![(send_sql, send_params)];
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "insert into {p}push_outbox (tenant, send_id, registration_id, platform, endpoint, keys, payload, ttl, urgency, topic, expires_at, next_at) values ",
            );
            let mut params = Vec::with_capacity(chunk.len() * 12);
            for (i, r) in chunk.iter().enumerate() {
                sql += if i == 0 { "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" };
                params.extend([
                    Value::Text(tenant.clone()),
                    Value::Text(send.id.clone()),
                    Value::Text(r.registration_id.clone()),
                    Value::Text(r.platform.clone()),
                    Value::Text(r.endpoint.clone()),
                    Value::Text(r.keys.clone()),
                    Value::Text(r.payload.clone()),
                    Value::Int(r.ttl),
                    Value::Text(r.urgency.clone()),
                    Value::Text(r.topic.clone()),
                    Value::Int(r.expires_at),
                    Value::Int(r.next_at),
                ]);
            }
            statements.push((self.push_sql(&sql), params));
        }
        self.push_tx(statements).await
    }

    /// Runs statements (already in the dialect) in one transaction.
    async fn push_tx(&self, statements: Vec<(String, Vec<Value>)>) -> Result<()> {
        match &self.catalog {
            crate::Db::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for (sql, params) in &statements {
                    sqlx::query_with(sql, crate::db::sqlite_args(params)?).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            crate::Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                for (sql, params) in &statements {
                    sqlx::query_with(sql, crate::db::pg_args(params)?).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            crate::Db::SqliteEngine(_) => return Err(crate::StorageError::Internal("the catalog is never a tenant engine".into())),
        }
        Ok(())
    }

    /// Claims up to `limit` due notifications until `lease_until` (epoch ms): on PostgreSQL with
    /// `FOR UPDATE SKIP LOCKED`, so that nodes never claim the same row; on SQLite this node is the
    /// only claiming writer.
    pub async fn claim_push(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let lock = if self.dialect() == Dialect::Postgres { " for update skip locked" } else { "" };
        let sql = format!(
            "update {{p}}push_outbox set claimed_until = ? where id in (select id from {{p}}push_outbox where next_at <= ? and claimed_until <= ? \
             order by next_at, id limit ?{lock}) returning {OUTBOX_COLUMNS}"
        );
        self.push_rows(&sql, vec![Value::Int(lease_until), Value::Int(now), Value::Int(now), Value::Int(limit)]).await
    }

    /// Records what became of a claimed notification (and of its registration, when pruned).
    pub async fn finish_push(&self, row: &OutboxRow, outcome: Outcome) -> Result<()> {
        self.finish_push_many(&[(row.clone(), outcome)]).await
    }

    /// The outcomes of many deliveries in one transaction (the worker's group commit): the rows
    /// finished leave the outbox in one statement per 256, retried ones are rescheduled, pruned
    /// registrations removed, and each send's counters raised once per kind of outcome.
    pub async fn finish_push_many(&self, done: &[(OutboxRow, Outcome)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut statements = Vec::new();
        let mut finished = Vec::new();
        let mut counters: std::collections::BTreeMap<(&str, &str, &str), i64> = std::collections::BTreeMap::new();
        for (row, outcome) in done {
            let counter = match outcome {
                Outcome::Delivered => "delivered",
                Outcome::Pruned => "pruned",
                Outcome::Failed => "failed",
                Outcome::Expired => "expired",
                Outcome::Retry(_) => "retried",
            };
            *counters.entry((row.tenant.as_str(), row.send_id.as_str(), counter)).or_default() += 1;
            match outcome {
                Outcome::Retry(at) => statements.push((
                    self.push_sql("update {p}push_outbox set next_at = ?, attempts = attempts + 1, claimed_until = 0 where id = ?"),
                    vec![Value::Int(*at), Value::Int(row.id)],
                )),
                _ => finished.push(row.id),
            }
            if *outcome == Outcome::Pruned {
                statements.push((
                    self.push_sql("delete from {p}push_registrations where tenant = ? and id = ?"),
                    vec![Value::Text(row.tenant.clone()), Value::Text(row.registration_id.clone())],
                ));
            }
        }
        for ids in finished.chunks(256) {
            let marks = vec!["?"; ids.len()].join(", ");
            statements.push((self.push_sql(&format!("delete from {{p}}push_outbox where id in ({marks})")), ids.iter().map(|i| Value::Int(*i)).collect()));
        }
        for ((tenant, send, counter), n) in counters {
            let sql = format!("update {{p}}push_sends set {counter} = {counter} + ? where tenant = ? and id = ?");
            statements.push((self.push_sql(&sql), vec![Value::Int(n), Value::Text(tenant.to_string()), Value::Text(send.to_string())]));
        }
        self.push_tx(statements).await
    }

    /// Gives claimed notifications back (a stopping node; on SQLite at start, every claim, since
    /// only this process claims).
    pub async fn release_push(&self, ids: Option<&[i64]>) -> Result<u64> {
        match ids {
            None => self.push_exec("update {p}push_outbox set claimed_until = 0 where claimed_until <> 0", vec![]).await,
            Some(ids) => {
                let mut n = 0;
                for id in ids {
                    n += self.push_exec("update {p}push_outbox set claimed_until = 0 where id = ?", vec![Value::Int(*id)]).await?;
                }
                Ok(n)
            }
        }
    }

    /// A tenant's sends, newest first (at most `limit`), and how many of each are still waiting.
    pub async fn push_sends(&self, tenant: &str, limit: i64) -> Result<Vec<(SendRecord, i64)>> {
        let tenant = tenant.to_ascii_lowercase();
        let sends: Vec<SendRecord> = self
            .push_rows(
                "select id, platform, tags, created_at, queued, delivered, retried, expired, failed, pruned from {p}push_sends where tenant = ? order by created_at desc, id limit ?",
                vec![Value::Text(tenant.clone()), Value::Int(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(sends.len());
        for s in sends {
            let waiting: Vec<(i64,)> = self
                .push_rows("select count(*) from {p}push_outbox where tenant = ? and send_id = ?", vec![Value::Text(tenant.clone()), Value::Text(s.id.clone())])
                .await?;
            out.push((s, waiting.first().map_or(0, |w| w.0)));
        }
        Ok(out)
    }

    /// Notifications waiting in the outbox, for every tenant.
    pub async fn push_waiting(&self) -> Result<i64> {
        let n: Vec<(i64,)> = self.push_rows("select count(*) from {p}push_outbox", vec![]).await?;
        Ok(n.first().map_or(0, |w| w.0))
    }
}

/// A tenant's credentials for one native push service (`fcm` or `apns`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PlatformCredentialRecord {
    /// `fcm` or `apns`.
    pub platform: String,
    /// The parts that may be shown, as JSON.
    pub config: String,
    /// The private key, sealed by the server.
    pub secret: String,
    /// ISO-8601.
    pub updated_at: String,
}

impl Storage {
    /// The tenant's native push credentials (at most one per platform).
    pub async fn platform_credentials(&self, tenant: &str) -> Result<Vec<PlatformCredentialRecord>> {
        self.push_rows(
            "select platform, config, secret, updated_at from {p}push_platform_credentials where tenant = ? order by platform",
            vec![Value::Text(tenant.to_ascii_lowercase())],
        )
        .await
    }

    /// Stores (or replaces) a platform's credentials.
    pub async fn put_platform_credential(&self, tenant: &str, platform: &str, config: &str, secret_sealed: &str) -> Result<()> {
        self.push_exec(
            "insert into {p}push_platform_credentials (tenant, platform, config, secret, updated_at) values (?, ?, ?, ?, ?) \
             on conflict (tenant, platform) do update set config = excluded.config, secret = excluded.secret, updated_at = excluded.updated_at",
            vec![
                Value::Text(tenant.to_ascii_lowercase()),
                Value::Text(platform.to_string()),
                Value::Text(config.to_string()),
                Value::Text(secret_sealed.to_string()),
                Value::Text(now_iso()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Removes a platform's credentials; `false` if there were none.
    pub async fn delete_platform_credential(&self, tenant: &str, platform: &str) -> Result<bool> {
        let n = self
            .push_exec(
                "delete from {p}push_platform_credentials where tenant = ? and platform = ?",
                vec![Value::Text(tenant.to_ascii_lowercase()), Value::Text(platform.to_string())],
            )
            .await?;
        Ok(n > 0)
    }

    /// A tenant's registrations matching a filter, for the portal and `/manage/v1` (filled ones only;
    /// `tag` a tag they carry, `user` the user who registered), newest first, at most `limit`.
    pub async fn find_registrations(
        &self,
        tenant: &str,
        platform: Option<&str>,
        tag: Option<&str>,
        user: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RegistrationRecord>> {
        let mut sql = format!("select {COLUMNS} from {{p}}push_registrations where tenant = ? and platform <> ''");
        let mut params = vec![Value::Text(tenant.to_ascii_lowercase())];
        if let Some(p) = platform {
            sql += " and platform = ?";
            params.push(Value::Text(p.to_string()));
        }
        if let Some(t) = tag {
            // Tags are JSON strings without quotes or backslashes (the push module's rule): the
            // quoted tag is found exactly, `_` escaped for LIKE.
            sql += " and tags like ? escape '\\'";
            params.push(Value::Text(format!("%{}%", Json::from(t).to_string().replace('\\', "\\\\").replace('_', "\\_").replace('%', "\\%"))));
        }
        if let Some(u) = user {
            sql += " and user_id = ?";
            params.push(Value::Text(u.to_string()));
        }
        sql += " order by created_at desc, id limit ?";
        params.push(Value::Int(limit));
        self.push_rows(&sql, params).await
    }

    /// One send of a tenant and how many of its notifications still wait.
    pub async fn push_send(&self, tenant: &str, id: &str) -> Result<Option<(SendRecord, i64)>> {
        let tenant = tenant.to_ascii_lowercase();
        let sends: Vec<SendRecord> = self
            .push_rows(
                "select id, platform, tags, created_at, queued, delivered, retried, expired, failed, pruned from {p}push_sends where tenant = ? and id = ?",
                vec![Value::Text(tenant.clone()), Value::Text(id.to_string())],
            )
            .await?;
        let Some(s) = sends.into_iter().next() else { return Ok(None) };
        let waiting: Vec<(i64,)> = self
            .push_rows("select count(*) from {p}push_outbox where tenant = ? and send_id = ?", vec![Value::Text(tenant), Value::Text(s.id.clone())])
            .await?;
        Ok(Some((s, waiting.first().map_or(0, |w| w.0))))
    }
}
