//! Applications, their tokens and keyed items, and the webhook delivery outbox.

use super::jobs::enqueue_in;
use super::{backend, map_err, SqliteStore};
use crate::rows::{
    self, APP_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS, MEMBER_COLUMNS, TOKEN_COLUMNS,
};
use crate::rules;
use async_trait::async_trait;
use hangar_core::app_model::{AppDoc, ItemKind};
use hangar_core::ids::random_id;
use hangar_core::jobs::{Deliver, NewJob};
use hangar_core::model::Member;
use hangar_core::now_ms;
use hangar_core::read_cache::Invalidation;
use hangar_core::store::*;

/// Records a delivery (once: ids are derived from what is delivered) and, for a new pending one, the
/// job that sends it.
async fn insert_delivery(conn: &mut sqlx::SqliteConnection, d: &Delivery) -> StoreResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO deliveries (id, app_id, webhook_id, kind, body, status, attempts, \
         next_attempt_utc, created_utc, last_error) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&d.id)
    .bind(d.app_id)
    .bind(&d.webhook_id)
    .bind(&d.kind)
    .bind(&d.body)
    .bind(&d.status)
    .bind(d.next_attempt_utc)
    .bind(d.created_utc)
    .bind(&d.last_error)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if inserted.rows_affected() == 1 && d.status == "pending" {
        let job = NewJob::of(
            &Deliver {
                delivery_id: d.id.clone(),
            },
            d.next_attempt_utc,
        );
        enqueue_in(conn, &job).await?;
    }
    Ok(())
}

async fn upsert_item(conn: &mut sqlx::SqliteConnection, i: &AppItem) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO app_items (app_id, kind, scope, key, value, created_utc) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (app_id, kind, scope, key) DO UPDATE SET value = excluded.value, \
         version = app_items.version + 1",
    )
    .bind(i.app_id)
    .bind(i.kind.as_str())
    .bind(&i.scope)
    .bind(&i.key)
    .bind(i.value.to_string())
    .bind(i.created_utc)
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

impl SqliteStore {
    async fn write_item(&self, i: &AppItem, limit: Option<i64>, new_only: bool) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (count, exists): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(key = ?), 0) FROM app_items \
             WHERE app_id = ? AND kind = ? AND scope = ?",
        )
        .bind(&i.key)
        .bind(i.app_id)
        .bind(i.kind.as_str())
        .bind(&i.scope)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        rules::item_write_allowed(count, exists > 0, new_only, limit)?;
        upsert_item(&mut tx, i).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl AppStore for SqliteStore {
    async fn create_app(
        &self,
        client_id: &str,
        name: &str,
        doc: &AppDoc,
        first: Option<&Delivery>,
    ) -> StoreResult<AppRecord> {
        let mut tx = self.write().await?;
        let record = AppRecord {
            id: random_id(),
            client_id: client_id.to_string(),
            name: name.to_string(),
            bot_member_id: random_id(),
            archived: false,
            doc: doc.clone(),
            version: 1,
            created_utc: now_ms(),
        };
        // `!` is no Argon2 hash: the member cannot log in.
        sqlx::query(
            "INSERT INTO members (id, username, password_hash, display_name, role, created_utc, is_app) \
             VALUES (?, ?, '!', ?, 'member', ?, 1)",
        )
        .bind(record.bot_member_id)
        .bind(format!("app-{}", record.id))
        .bind(name)
        .bind(record.created_utc)
        .execute(&mut *tx)
        .await
        .map_err(map_err("member"))?;
        sqlx::query(
            "INSERT INTO applications (id, client_id, name, bot_member_id, archived, doc, version, created_utc) \
             VALUES (?, ?, ?, ?, 0, ?, 1, ?)",
        )
        .bind(record.id)
        .bind(client_id)
        .bind(name)
        .bind(record.bot_member_id)
        .bind(doc.to_json())
        .bind(record.created_utc)
        .execute(&mut *tx)
        .await
        .map_err(map_err("application with this clientId"))?;
        if let Some(d) = first {
            let d = Delivery {
                app_id: record.id,
                ..d.clone()
            };
            insert_delivery(&mut tx, &d).await?;
        }
        self.commit_queued(tx).await?;
        Ok(record)
    }
    async fn app(&self, id: i64) -> StoreResult<Option<AppRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE a.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(|r| rows::app(r, 0)).transpose()
    }
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<AppRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE a.client_id = ?"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(|r| rows::app(r, 0)).transpose()
    }
    async fn app_by_member(&self, member_id: i64) -> StoreResult<Option<AppRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE a.bot_member_id = ?"
        ))
        .bind(member_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(|r| rows::app(r, 0)).transpose()
    }
    async fn list_apps(
        &self,
        filter: &AppFilter,
        by_created: bool,
        skip: i64,
        top: i64,
    ) -> StoreResult<AppPage> {
        let pattern = filter.name.as_deref().map(rules::contains_pattern);
        let owners = rules::owners_json(filter);
        let clause = "(? IS NULL OR a.name LIKE ? ESCAPE '\\') AND (? OR a.archived = 0) \
             AND (? OR coalesce(json_extract(a.doc, '$.multiOrg'), 0) = 0) \
             AND (? IS NULL OR json_extract(a.doc, '$.ownerId') IN (SELECT value FROM json_each(?)))";
        let order = if by_created {
            "a.created_utc, a.id"
        } else {
            "a.name COLLATE NOCASE, a.id"
        };
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?"
        ))
        .bind(&pattern)
        .bind(&pattern)
        .bind(filter.with_archived)
        .bind(filter.with_managed)
        .bind(&owners)
        .bind(&owners)
        .bind(top)
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM applications a WHERE {clause}"
        ))
        .bind(&pattern)
        .bind(&pattern)
        .bind(filter.with_archived)
        .bind(filter.with_managed)
        .bind(&owners)
        .bind(&owners)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(AppPage {
            apps: rows
                .iter()
                .map(|r| rows::app(r, 0))
                .collect::<StoreResult<_>>()?,
            total,
        })
    }
    async fn update_app(
        &self,
        id: i64,
        version: i64,
        name: &str,
        archived: bool,
        doc: &AppDoc,
    ) -> StoreResult<AppRecord> {
        let mut tx = self.write().await?;
        let row = sqlx::query(&format!(
            "UPDATE applications SET name = ?, archived = ?, doc = ?, version = version + 1 \
             WHERE id = ? AND version = ? RETURNING {}",
            APP_COLUMNS.replace("a.", "")
        ))
        .bind(name)
        .bind(archived)
        .bind(doc.to_json())
        .bind(id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .ok_or(StoreError::Conflict("a newer version of the application"))?;
        let record = rows::app(&row, 0)?;
        sqlx::query("UPDATE members SET display_name = ? WHERE id = ?")
            .bind(name)
            .bind(record.bot_member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.invalidate(&[Invalidation::Callers]);
        Ok(record)
    }
}

#[async_trait]
impl AppTokenStore for SqliteStore {
    async fn create_app_token(&self, t: &AppToken, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO app_tokens (id, app_id, kind, name, token_hash, scope, member_id, expires_utc, \
             created_utc, data, parent_id, minted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id)
        .bind(t.app_id)
        .bind(&t.kind)
        .bind(&t.name)
        .bind(token_hash)
        .bind(&t.scope)
        .bind(t.member_id)
        .bind(t.expires_utc)
        .bind(t.created_utc)
        .bind(t.data.to_string())
        .bind(t.made_with)
        .bind(t.minted_by)
        .execute(&self.pool)
        .await
        .map_err(map_err("token"))?;
        Ok(())
    }
    async fn app_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AppToken, AppRecord, Member)>> {
        let ticket = match self.fresh_cache().app(token_hash, now) {
            Ok(found) => return Ok(Some(found)),
            Err(ticket) => ticket,
        };
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, {APP_COLUMNS}, {MEMBER_COLUMNS} FROM app_tokens t \
             JOIN applications a ON a.id = t.app_id \
             JOIN members m ON m.id = COALESCE(t.member_id, a.bot_member_id) \
             WHERE t.token_hash = ? AND t.kind IN ('access', 'permanent') \
             AND (t.expires_utc IS NULL OR t.expires_utc > ?) AND a.archived = 0"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        // The three tables share column names: each is read from its position.
        let found = row
            .map(|r| -> StoreResult<_> {
                Ok((
                    rows::app_token(&r, 0),
                    rows::app(&r, 10)?,
                    rows::member_at(&r, 18),
                ))
            })
            .transpose()?;
        if let Some(found) = &found {
            self.cache.store_app(ticket, token_hash, found, now);
        }
        Ok(found)
    }
    async fn take_app_token(
        &self,
        token_hash: &str,
        kind: &str,
        now: i64,
    ) -> StoreResult<Option<AppToken>> {
        let row = sqlx::query(
            "DELETE FROM app_tokens WHERE token_hash = ? AND kind = ? RETURNING id, app_id, \
             kind, name, scope, member_id, expires_utc, created_utc, last_used_utc, data",
        )
        .bind(token_hash)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        self.invalidate(&[Invalidation::Callers]);
        Ok(row
            .as_ref()
            .map(|r| rows::app_token(r, 0))
            .filter(|t| t.expires_utc.is_none_or(|e| e > now)))
    }
    async fn use_code(&self, token_hash: &str, now: i64) -> StoreResult<Option<(AppToken, bool)>> {
        self.use_once(token_hash, "code", "used-code", now).await
    }
    async fn use_refresh(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AppToken, bool)>> {
        self.use_once(token_hash, "refresh", "used-refresh", now)
            .await
    }
    async fn revoke_grant(&self, app_id: i64, grant_id: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM app_tokens WHERE app_id = ? AND json_extract(data, '$.grant') = ?",
        )
        .bind(app_id)
        .bind(grant_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.invalidate(&[Invalidation::Callers]);
        Ok(done.rows_affected())
    }
    async fn list_app_tokens(&self, app_id: i64, kind: &str) -> StoreResult<Vec<AppToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM app_tokens t WHERE t.app_id = ? AND t.kind = ? \
             ORDER BY t.created_utc, t.id"
        ))
        .bind(app_id)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(|r| rows::app_token(r, 0)).collect())
    }
    async fn update_app_token(&self, t: &AppToken) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE app_tokens SET name = ?, scope = ?, expires_utc = ? WHERE id = ? AND app_id = ?",
        )
        .bind(&t.name)
        .bind(&t.scope)
        .bind(t.expires_utc)
        .bind(t.id)
        .bind(t.app_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.invalidate(&[Invalidation::Callers]);
        Ok(done.rows_affected() == 1)
    }
    async fn delete_app_token(&self, app_id: i64, token_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM app_tokens WHERE id = ? AND app_id = ?")
            .bind(token_id)
            .bind(app_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        self.invalidate(&[Invalidation::Callers]);
        Ok(done.rows_affected() == 1)
    }
    async fn delete_app_tokens(&self, app_id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM app_tokens WHERE app_id = ?")
            .bind(app_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        self.invalidate(&[Invalidation::Callers]);
        Ok(())
    }
    async fn touch_app_token(&self, token_id: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE app_tokens SET last_used_utc = ? WHERE id = ?")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        self.cache.app_used(token_id, now);
        Ok(())
    }
}

#[async_trait]
impl AppItemStore for SqliteStore {
    async fn put_item(&self, i: &AppItem, limit: Option<i64>) -> StoreResult<()> {
        self.write_item(i, limit, false).await
    }
    async fn insert_item(&self, i: &AppItem, limit: Option<i64>) -> StoreResult<()> {
        self.write_item(i, limit, true).await
    }
    async fn replace_item(&self, i: &AppItem) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE app_items SET value = ?, version = version + 1 \
             WHERE app_id = ? AND kind = ? AND scope = ? AND key = ? AND version = ?",
        )
        .bind(i.value.to_string())
        .bind(i.app_id)
        .bind(i.kind.as_str())
        .bind(&i.scope)
        .bind(&i.key)
        .bind(i.version)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
    async fn item(
        &self,
        app_id: i64,
        kind: ItemKind,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<AppItem>> {
        let row = sqlx::query(
            "SELECT * FROM app_items WHERE app_id = ? AND kind = ? AND scope = ? AND key = ?",
        )
        .bind(app_id)
        .bind(kind.as_str())
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(rows::app_item).transpose()
    }
    async fn items(
        &self,
        app_id: Option<i64>,
        kind: ItemKind,
        scope: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AppItem>> {
        let rows = sqlx::query(
            "SELECT * FROM app_items WHERE kind = ? AND (? IS NULL OR app_id = ?) \
             AND (? IS NULL OR scope = ?) AND (? IS NULL OR key > ?) \
             ORDER BY app_id, scope, key LIMIT ?",
        )
        .bind(kind.as_str())
        .bind(app_id)
        .bind(app_id)
        .bind(scope)
        .bind(scope)
        .bind(after)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::app_item).collect()
    }
    async fn delete_item(
        &self,
        app_id: i64,
        kind: ItemKind,
        scope: &str,
        key: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM app_items WHERE app_id = ? AND kind = ? AND scope = ? AND key = ?",
        )
        .bind(app_id)
        .bind(kind.as_str())
        .bind(scope)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
    async fn delete_items(
        &self,
        app_id: i64,
        kind: ItemKind,
        scope: Option<&str>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM app_items WHERE app_id = ? AND kind = ? AND (? IS NULL OR scope = ?)",
        )
        .bind(app_id)
        .bind(kind.as_str())
        .bind(scope)
        .bind(scope)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn event(&self, id: &str) -> StoreResult<Option<EventRecord>> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(rows::event))
    }
    async fn record_dispatch(
        &self,
        event_id: &str,
        deliveries: &[Delivery],
        items: &[AppItem],
    ) -> StoreResult<()> {
        // Background bookkeeping: see `queue_pool`. Lost to a power cut, the dispatch job (whose
        // completion comes later in the log) runs again and records the same ids.
        let mut tx = self.queue_write().await?;
        for d in deliveries {
            insert_delivery(&mut tx, d).await?;
        }
        for i in items {
            upsert_item(&mut tx, i).await?;
        }
        sqlx::query("UPDATE events SET dispatched = 1 WHERE id = ?")
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        self.commit_queued(tx).await
    }
    async fn enqueue_delivery(&self, d: &Delivery) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_delivery(&mut tx, d).await?;
        self.commit_queued(tx).await
    }
    async fn delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(rows::delivery))
    }
    async fn finish_delivery(&self, d: &Delivery) -> StoreResult<()> {
        // Background bookkeeping (see `queue_pool`): lost to a power cut, the delivery is sent again,
        // as after any death of its node.
        sqlx::query(
            "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_utc = ?, last_status = ?, \
             last_error = ? WHERE id = ?",
        )
        .bind(&d.status)
        .bind(d.attempts)
        .bind(d.next_attempt_utc)
        .bind(d.last_status)
        .bind(&d.last_error)
        .bind(&d.id)
        .execute(&self.queue_pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
    async fn deliveries(&self, app_id: i64, kind: Option<&str>) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE app_id = ? AND (? IS NULL OR kind = ?) \
             ORDER BY created_utc, id"
        ))
        .bind(app_id)
        .bind(kind)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(rows::delivery).collect())
    }
    async fn recent_deliveries(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (? IS NULL OR status = ?) \
             ORDER BY created_utc DESC, id LIMIT ?"
        ))
        .bind(status)
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(rows::delivery).collect())
    }
    async fn retry_delivery(&self, id: &str) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_utc = ? \
             WHERE id = ? AND status = 'failed'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let job = NewJob::of(
            &Deliver {
                delivery_id: id.to_string(),
            },
            now,
        );
        enqueue_in(&mut tx, &job).await?;
        self.commit_queued(tx).await?;
        Ok(true)
    }
    async fn prune_app_data(&self, before: i64) -> StoreResult<u64> {
        let deliveries =
            sqlx::query("DELETE FROM deliveries WHERE status <> 'pending' AND created_utc < ?")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        let queued =
            sqlx::query("DELETE FROM app_items WHERE kind = 'unfurl-queue' AND created_utc < ?")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        let tokens = sqlx::query("DELETE FROM app_tokens WHERE expires_utc < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        // Only events the webhook dispatcher has handled: the rest are still to be delivered.
        let events = sqlx::query("DELETE FROM events WHERE created_utc < ? AND dispatched = 1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(deliveries.rows_affected()
            + queued.rows_affected()
            + tokens.rows_affected()
            + events.rows_affected())
    }
}

impl SqliteStore {
    /// Marks a single-use token of `kind` as `used_kind` and answers it with `true` the first time;
    /// one already used with `false`; an unknown or expired one with None.
    async fn use_once(
        &self,
        token_hash: &str,
        kind: &str,
        used_kind: &str,
        now: i64,
    ) -> StoreResult<Option<(AppToken, bool)>> {
        let first = sqlx::query(
            "UPDATE app_tokens SET kind = ? WHERE token_hash = ? AND kind = ? \
             RETURNING id, app_id, kind, name, scope, member_id, expires_utc, created_utc, \
             last_used_utc, data",
        )
        .bind(used_kind)
        .bind(token_hash)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        if let Some(row) = first {
            let t = rows::app_token(&row, 0);
            return Ok(t.expires_utc.is_none_or(|e| e > now).then_some((t, true)));
        }
        let used = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM app_tokens t WHERE t.token_hash = ? AND t.kind = ?"
        ))
        .bind(token_hash)
        .bind(used_kind)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(used.as_ref().map(|r| (rows::app_token(r, 0), false)))
    }
}
