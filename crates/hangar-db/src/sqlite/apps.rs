//! Applications, their tokens and keyed items, and the webhook delivery outbox.

use super::jobs::enqueue_in;
use super::rows::MEMBER_COLUMNS;
use super::{backend, map_err, SqliteStore};
use async_trait::async_trait;
use hangar_core::app_model::{AppDoc, ItemKind};
use hangar_core::ids::random_id;
use hangar_core::jobs::{Deliver, NewJob};
use hangar_core::model::Member;
use hangar_core::now_ms;
use hangar_core::store::*;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

const APP_COLUMNS: &str =
    "a.id, a.client_id, a.name, a.bot_member_id, a.archived, a.doc, a.version, a.created_utc";
const TOKEN_COLUMNS: &str = "t.id, t.app_id, t.kind, t.name, t.scope, t.member_id, t.expires_utc, \
     t.created_utc, t.last_used_utc, t.data";
const DELIVERY_COLUMNS: &str = "id, app_id, webhook_id, kind, body, status, attempts, \
     next_attempt_utc, last_status, last_error, created_utc";

fn json_col(row: &SqliteRow, col: &str) -> Value {
    serde_json::from_str(row.get::<&str, _>(col)).unwrap_or(Value::Null)
}

fn app(row: &SqliteRow) -> StoreResult<AppRecord> {
    Ok(AppRecord {
        id: row.get("id"),
        client_id: row.get("client_id"),
        name: row.get("name"),
        bot_member_id: row.get("bot_member_id"),
        archived: row.get::<i64, _>("archived") != 0,
        doc: AppDoc::from_json(row.get::<&str, _>("doc"))?,
        version: row.get("version"),
        created_utc: row.get("created_utc"),
    })
}

fn token(row: &SqliteRow) -> AppToken {
    AppToken {
        id: row.get("id"),
        app_id: row.get("app_id"),
        kind: row.get("kind"),
        name: row.get("name"),
        scope: row.get("scope"),
        member_id: row.get("member_id"),
        expires_utc: row.get("expires_utc"),
        created_utc: row.get("created_utc"),
        last_used_utc: row.get("last_used_utc"),
        data: json_col(row, "data"),
    }
}

fn item(row: &SqliteRow) -> StoreResult<AppItem> {
    let kind: &str = row.get("kind");
    Ok(AppItem {
        app_id: row.get("app_id"),
        kind: ItemKind::parse(kind).ok_or_else(|| {
            StoreError::Backend(format!("unknown application item kind {kind:?}"))
        })?,
        scope: row.get("scope"),
        key: row.get("key"),
        value: json_col(row, "value"),
        created_utc: row.get("created_utc"),
        version: row.get("version"),
    })
}

fn delivery(row: &SqliteRow) -> Delivery {
    Delivery {
        id: row.get("id"),
        app_id: row.get("app_id"),
        webhook_id: row.get("webhook_id"),
        kind: row.get("kind"),
        body: row.get("body"),
        status: row.get("status"),
        attempts: row.get("attempts"),
        next_attempt_utc: row.get("next_attempt_utc"),
        last_status: row.get("last_status"),
        last_error: row.get("last_error"),
        created_utc: row.get("created_utc"),
    }
}

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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
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
        if new_only && exists > 0 {
            return Err(StoreError::Conflict("an item with this key"));
        }
        if let Some(limit) = limit {
            if exists == 0 && count >= limit {
                return Err(StoreError::Refused {
                    code: "limits-reached",
                    reason: format!("at most {limit} of these are allowed"),
                });
            }
        }
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
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
        row.as_ref().map(app).transpose()
    }
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<AppRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE a.client_id = ?"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(app).transpose()
    }
    async fn app_by_member(&self, member_id: i64) -> StoreResult<Option<AppRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE a.bot_member_id = ?"
        ))
        .bind(member_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(app).transpose()
    }
    async fn list_apps(
        &self,
        name: Option<&str>,
        with_archived: bool,
        by_created: bool,
        skip: i64,
        top: i64,
    ) -> StoreResult<AppPage> {
        let pattern = name.map(|n| {
            format!(
                "%{}%",
                n.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        let filter = "(? IS NULL OR a.name LIKE ? ESCAPE '\\') AND (? OR a.archived = 0)";
        let order = if by_created {
            "a.created_utc, a.id"
        } else {
            "a.name COLLATE NOCASE, a.id"
        };
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications a WHERE {filter} ORDER BY {order} LIMIT ? OFFSET ?"
        ))
        .bind(&pattern)
        .bind(&pattern)
        .bind(with_archived)
        .bind(top)
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM applications a WHERE {filter}"
        ))
        .bind(&pattern)
        .bind(&pattern)
        .bind(with_archived)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(AppPage {
            apps: rows.iter().map(app).collect::<StoreResult<_>>()?,
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
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
        let record = app(&row)?;
        sqlx::query("UPDATE members SET display_name = ? WHERE id = ?")
            .bind(name)
            .bind(record.bot_member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(record)
    }
}

#[async_trait]
impl AppTokenStore for SqliteStore {
    async fn create_app_token(&self, t: &AppToken, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO app_tokens (id, app_id, kind, name, token_hash, scope, member_id, expires_utc, \
             created_utc, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        row.map(|r| {
            // The three tables share column names: read each from its position.
            let t = AppToken {
                id: r.get(0),
                app_id: r.get(1),
                kind: r.get(2),
                name: r.get(3),
                scope: r.get(4),
                member_id: r.get(5),
                expires_utc: r.get(6),
                created_utc: r.get(7),
                last_used_utc: r.get(8),
                data: serde_json::from_str(r.get::<&str, _>(9)).unwrap_or(Value::Null),
            };
            let a = AppRecord {
                id: r.get(10),
                client_id: r.get(11),
                name: r.get(12),
                bot_member_id: r.get(13),
                archived: r.get::<i64, _>(14) != 0,
                doc: AppDoc::from_json(r.get::<&str, _>(15))?,
                version: r.get(16),
                created_utc: r.get(17),
            };
            let m = Member {
                id: r.get(18),
                username: r.get(19),
                display_name: r.get(20),
                role: hangar_core::model::Role::parse(r.get::<&str, _>(21))
                    .unwrap_or(hangar_core::model::Role::Member),
                created_utc: r.get(22),
            };
            Ok((t, a, m))
        })
        .transpose()
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
        Ok(row
            .as_ref()
            .map(token)
            .filter(|t| t.expires_utc.is_none_or(|e| e > now)))
    }
    async fn use_code(&self, token_hash: &str, now: i64) -> StoreResult<Option<(AppToken, bool)>> {
        let first = sqlx::query(
            "UPDATE app_tokens SET kind = 'used-code' WHERE token_hash = ? AND kind = 'code' \
             RETURNING id, app_id, kind, name, scope, member_id, expires_utc, created_utc, \
             last_used_utc, data",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        if let Some(row) = first {
            let t = token(&row);
            return Ok(t.expires_utc.is_none_or(|e| e > now).then_some((t, true)));
        }
        let used = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM app_tokens t WHERE t.token_hash = ? AND t.kind = 'used-code'"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(used.as_ref().map(|r| (token(r), false)))
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
        Ok(rows.iter().map(token).collect())
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
        Ok(done.rows_affected() == 1)
    }
    async fn delete_app_token(&self, app_id: i64, token_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM app_tokens WHERE id = ? AND app_id = ?")
            .bind(token_id)
            .bind(app_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
    async fn delete_app_tokens(&self, app_id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM app_tokens WHERE app_id = ?")
            .bind(app_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
    async fn touch_app_token(&self, token_id: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE app_tokens SET last_used_utc = ? WHERE id = ?")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
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
        row.as_ref().map(item).transpose()
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
        rows.iter().map(item).collect()
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
        let row = sqlx::query(
            "SELECT seq, id, event_type, space_id, actor_id, payload, created_utc FROM events WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|r| EventRecord {
            seq: r.get("seq"),
            id: r.get("id"),
            event_type: r.get("event_type"),
            space_id: r.get("space_id"),
            actor_id: r.get("actor_id"),
            payload: json_col(&r, "payload"),
            created_utc: r.get("created_utc"),
        }))
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
        Ok(row.as_ref().map(delivery))
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
        Ok(rows.iter().map(delivery).collect())
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
        Ok(rows.iter().map(delivery).collect())
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
