//! Attachments, their links to messages and issues, and blob reference counts.

use super::blobs::{drop_ref, record_event};
use super::{backend, grouped, Conn, SqliteStore};
use crate::rows::{self, ATTACHMENT_COLUMNS};
use crate::rules::{self, LinkTable};
use async_trait::async_trait;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::read_cache::Invalidation;
use hangar_core::store::{AttachmentStore, StoreError, StoreResult};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::HashMap;

/// The statements of `insert_links` for `table`: the next free position (binds the owner), and the
/// link's insert (binds the owner, attachment, position, class name and details).
pub(crate) fn link_sql(table: LinkTable) -> [String; 2] {
    let (t, o) = (table.table(), table.owner());
    [
        format!("SELECT COALESCE(MAX(position), -1) + 1 FROM {t} WHERE {o} = ?"),
        format!(
            "INSERT OR IGNORE INTO {t} ({o}, attachment_id, position, class_name, details) \
             VALUES (?, ?, ?, ?, ?)"
        ),
    ]
}

/// Records an attachment's first message and room (binds them, the time and the attachment).
pub(crate) const FIRST_MESSAGE: &str =
    "UPDATE attachments SET message_id = ?, room_id = ?, modified_utc = ? \
     WHERE id = ? AND message_id IS NULL";

/// The room of a message (binds the message).
pub(crate) const MESSAGE_ROOM: &str = "SELECT channel_id FROM messages WHERE id = ?";

/// Inserts a new attachment: binds id, uploader, file name, content type, size, hash, whether it
/// stores a blob, state, media context, the time twice, and the number of the blob it holds.
pub(crate) const INSERT_ATTACHMENT: &str =
    "INSERT INTO attachments (id, uploader_id, file_name, content_type, size, sha256, stores_blob, \
     state, media_context, created_utc, modified_utc, blob_seq) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The bytes a member's attachments hold against their quota (binds the member).
pub(crate) fn member_usage_sql() -> String {
    format!(
        "SELECT COALESCE(SUM(size), 0) FROM attachments WHERE uploader_id = ? \
         AND (stores_blob = 1 OR state IN ({}))",
        rules::UPLOADING_STATES
    )
}

/// One attachment by id.
pub(crate) fn attachment_sql() -> String {
    format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.id = ?")
}

/// Links attachments to a message or issue inside the caller's transaction. Linking twice is a no-op.
/// A message link also records the attachment's first message and room when it has none yet.
pub(crate) async fn insert_links(
    tx: &mut Transaction<'static, Sqlite>,
    table: LinkTable,
    owner_id: i64,
    room_id: Option<i64>,
    links: &[AttachmentLink],
) -> StoreResult<()> {
    let [next_position, insert_link] = link_sql(table);
    let start: i64 = sqlx::query_scalar(&next_position)
        .bind(owner_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    for (i, link) in links.iter().enumerate() {
        let details = serde_json::Value::Object(link.details.clone()).to_string();
        sqlx::query(&insert_link)
            .bind(owner_id)
            .bind(link.attachment_id)
            .bind(start + i as i64)
            .bind(&link.class_name)
            .bind(details)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        if let (LinkTable::Message, Some(room)) = (table, room_id) {
            sqlx::query(FIRST_MESSAGE)
                .bind(owner_id)
                .bind(room)
                .bind(now_ms())
                .bind(link.attachment_id)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// The attachments linked to each of `owner_ids`, in link order.
/// Deletes a message or issue in the caller's transaction; the attachments it linked stay, and those
/// it leaves attached to nothing are marked detached from now (the unattached TTL counts from then).
/// False when there was no such message or issue.
pub(crate) async fn delete_owner(
    tx: &mut Transaction<'static, Sqlite>,
    table: LinkTable,
    owner_id: i64,
) -> StoreResult<bool> {
    let (t, o) = (table.table(), table.owner());
    let linked: Vec<i64> =
        sqlx::query_scalar(&format!("SELECT attachment_id FROM {t} WHERE {o} = ?"))
            .bind(owner_id)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
    let deleted = sqlx::query(&format!("DELETE FROM {} WHERE id = ?", table.owners()))
        .bind(owner_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?
        .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    let now = now_ms();
    if table == LinkTable::Message {
        sqlx::query(
            "UPDATE attachments SET message_id = NULL, room_id = NULL, modified_utc = ? WHERE message_id = ?",
        )
        .bind(now)
        .bind(owner_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    for id in linked {
        sqlx::query(
            "UPDATE attachments SET detached_utc = ? WHERE id = ? \
             AND NOT EXISTS (SELECT 1 FROM message_attachments WHERE attachment_id = attachments.id) \
             AND NOT EXISTS (SELECT 1 FROM issue_attachments WHERE attachment_id = attachments.id)",
        )
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(true)
}

/// Refuses, inside the caller's write transaction, attachments of `member_id` adding `adding` bytes
/// past `quota`.
pub(crate) async fn check_owner_quota(
    tx: &mut Transaction<'static, Sqlite>,
    member_id: i64,
    adding: i64,
    quota: Option<i64>,
) -> StoreResult<()> {
    let Some(quota) = quota else {
        return Ok(());
    };
    let used = member_usage(&mut **tx, member_id).await?;
    if used.saturating_add(adding) > quota {
        return Err(rules::owner_quota_refusal(used, adding, quota));
    }
    Ok(())
}

async fn member_usage<'e>(
    db: impl sqlx::Executor<'e, Database = Sqlite>,
    member_id: i64,
) -> StoreResult<i64> {
    sqlx::query_scalar(&member_usage_sql())
        .bind(member_id)
        .fetch_one(db)
        .await
        .map_err(backend)
}

pub(crate) async fn linked_attachments(
    pool: &SqlitePool,
    table: LinkTable,
    owner_ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<LinkedAttachment>>> {
    let mut out: HashMap<i64, Vec<LinkedAttachment>> = HashMap::new();
    if owner_ids.is_empty() {
        return Ok(out);
    }
    let (t, o) = (table.table(), table.owner());
    let placeholders = vec!["?"; owner_ids.len()].join(", ");
    let sql = format!(
        "SELECT {ATTACHMENT_COLUMNS}, l.{o} AS owner_id, l.class_name, l.details \
         FROM {t} l JOIN attachments a ON a.id = l.attachment_id \
         WHERE l.{o} IN ({placeholders}) ORDER BY l.{o}, l.position"
    );
    let mut query = sqlx::query(&sql);
    for id in owner_ids {
        query = query.bind(*id);
    }
    for row in query.fetch_all(pool).await.map_err(backend)? {
        let (owner, linked) = rows::linked_attachment(&row);
        out.entry(owner).or_default().push(linked);
    }
    Ok(out)
}

/// One attachment, read with `db` (the pool, or a transaction).
async fn attachment_in<'e>(
    db: impl sqlx::Executor<'e, Database = Sqlite>,
    id: i64,
) -> StoreResult<Option<Attachment>> {
    let row = sqlx::query(&attachment_sql())
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(backend)?;
    Ok(row.as_ref().map(rows::attachment))
}

#[async_trait]
impl AttachmentStore for SqliteStore {
    async fn create_attachments(
        &self,
        new: &[NewAttachment],
        message_id: Option<i64>,
        owner_quota: Option<i64>,
    ) -> StoreResult<Vec<Attachment>> {
        // Committed in a group with other uploads' records (one WAL sync for all of them), and
        // answered only once that commit is on the disk.
        let new = new.to_vec();
        let events = grouped::attachments_created(&new, message_id);
        let scanning = self.scanning;
        // The rows are read back in the same transaction: no second trip to the database.
        self.writer
            .write(true, move |conn: &Conn| {
                grouped::create_attachments(conn, &new, &events, message_id, owner_quota, scanning)
            })
            .await
    }

    async fn attachment(&self, id: i64) -> StoreResult<Option<Attachment>> {
        attachment_in(&self.pool, id).await
    }

    async fn attachment_for_download(&self, id: i64) -> StoreResult<Option<Attachment>> {
        let now = now_ms();
        let ticket = match self.fresh_cache().attachment(id, now) {
            Ok(found) => return Ok(Some(found)),
            Err(ticket) => ticket,
        };
        let found = self.attachment(id).await?;
        if let Some(a) = found.as_ref().filter(|a| rules::cacheable(a)) {
            self.cache.store_attachment(ticket, a, now);
        }
        Ok(found)
    }

    async fn readable_through_links(
        &self,
        attachment_id: i64,
        member_id: i64,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let ticket = match self.fresh_cache().reader(attachment_id, member_id, now) {
            Ok(()) => return Ok(true),
            Err(ticket) => ticket,
        };
        let readable: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM message_attachments ma \
                 JOIN messages msg ON msg.id = ma.message_id \
                 JOIN channel_members cm ON cm.channel_id = msg.channel_id \
                 WHERE ma.attachment_id = ? AND cm.member_id = ?) \
             OR EXISTS (SELECT 1 FROM issue_attachments ia \
                 JOIN issues i ON i.id = ia.issue_id \
                 JOIN project_members pm ON pm.project_id = i.project_id \
                 WHERE ia.attachment_id = ? AND pm.member_id = ?)",
        )
        .bind(attachment_id)
        .bind(member_id)
        .bind(attachment_id)
        .bind(member_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        if readable != 0 {
            self.cache
                .store_reader(ticket, attachment_id, member_id, now);
        }
        Ok(readable != 0)
    }

    async fn is_linked_to_message(&self, attachment_id: i64, message_id: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM message_attachments WHERE attachment_id = ? AND message_id = ?",
        )
        .bind(attachment_id)
        .bind(message_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn publish(&self, id: i64) -> StoreResult<i64> {
        let version = sqlx::query_scalar(
            "UPDATE attachments SET public = 1, modified_utc = ? WHERE id = ? RETURNING link_version",
        )
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound("attachment"));
        self.invalidate(&[Invalidation::Attachment(id)]);
        version
    }

    async fn revoke_public_link(&self, id: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE attachments SET public = 0, link_version = link_version + 1, modified_utc = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.invalidate(&[Invalidation::Attachment(id)]);
        Ok(())
    }

    async fn delete_attachment(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let row: Option<(Option<String>, i64)> =
            sqlx::query_as("DELETE FROM attachments WHERE id = ? RETURNING sha256, stores_blob")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if row.is_some() {
            let payload = serde_json::json!({ "attachmentId": id });
            record_event(&mut tx, "Attachment.Deleted", None, None, payload).await?;
        }
        match row {
            None => return Err(StoreError::NotFound("attachment")),
            Some((Some(sha), 1)) => drop_ref(&mut tx, &sha, self.blob_grace_ms).await?,
            Some(_) => {}
        }
        self.commit_queued(tx).await?;
        self.invalidate(&[Invalidation::Attachment(id)]);
        Ok(())
    }

    async fn member_usage(&self, member_id: i64) -> StoreResult<i64> {
        member_usage(&self.pool, member_id).await
    }

    async fn unattached_before(&self, cutoff: i64, limit: i64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(&format!(
            "SELECT id FROM attachments WHERE COALESCE(detached_utc, created_utc) < ? \
             AND state NOT IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM message_attachments WHERE attachment_id = attachments.id) \
             AND NOT EXISTS (SELECT 1 FROM issue_attachments WHERE attachment_id = attachments.id) \
             ORDER BY id LIMIT ?",
            rules::UPLOADING_STATES
        ))
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
