//! Attachments, their links to messages and issues, and blob reference counts.

use super::blobs::{add_ref, drop_ref, record_event, REF_EXISTING_BLOB};
use super::jobs::on_conflict;
use super::{backend, commit, retrying, PgStore};
use crate::rows::{self, NamedRow, ATTACHMENT_COLUMNS};
use crate::rules::{self, FileRef, LinkTable};
use async_trait::async_trait;
use hangar_core::app_model::ItemKind;
use hangar_core::jobs::{DiscardObject, DispatchEvent, MakePreviews, NewJob};
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::read_cache::Invalidation;
use hangar_core::store::{AttachmentStore, StoreError, StoreResult};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;

/// Links attachments to a message or issue inside the caller's transaction. Linking twice is a no-op.
/// A message link also records the attachment's first message and room when it has none yet.
pub(crate) async fn insert_links(
    tx: &mut Transaction<'static, Postgres>,
    table: LinkTable,
    owner_id: i64,
    room_id: Option<i64>,
    links: &[AttachmentLink],
) -> StoreResult<()> {
    let (t, o) = (table.table(), table.owner());
    let start: i64 = sqlx::query_scalar(&format!(
        "SELECT COALESCE(MAX(position), -1) + 1 FROM {t} WHERE {o} = $1"
    ))
    .bind(owner_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    for (i, link) in links.iter().enumerate() {
        let details = serde_json::Value::Object(link.details.clone()).to_string();
        sqlx::query(&format!(
            "INSERT INTO {t} ({o}, attachment_id, position, class_name, details) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(owner_id)
        .bind(link.attachment_id)
        .bind(start + i as i64)
        .bind(&link.class_name)
        .bind(details)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        if let (LinkTable::Message, Some(room)) = (table, room_id) {
            sqlx::query(
                "UPDATE attachments SET message_id = $1, room_id = $2, modified_utc = $3 \
                 WHERE id = $4 AND message_id IS NULL",
            )
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

/// Deletes a message or issue in the caller's transaction; the attachments it linked stay, and those
/// it leaves attached to nothing are marked detached from now (the unattached TTL counts from then).
/// False when there was no such message or issue.
pub(crate) async fn delete_owner(
    tx: &mut Transaction<'static, Postgres>,
    table: LinkTable,
    owner_id: i64,
) -> StoreResult<bool> {
    let (t, o) = (table.table(), table.owner());
    let linked: Vec<i64> =
        sqlx::query_scalar(&format!("SELECT attachment_id FROM {t} WHERE {o} = $1"))
            .bind(owner_id)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
    let deleted = sqlx::query(&format!("DELETE FROM {} WHERE id = $1", table.owners()))
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
            "UPDATE attachments SET message_id = NULL, room_id = NULL, modified_utc = $1 WHERE message_id = $2",
        )
        .bind(now)
        .bind(owner_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    sqlx::query(
        "UPDATE attachments SET detached_utc = $1 WHERE id = ANY($2) \
         AND NOT EXISTS (SELECT 1 FROM message_attachments WHERE attachment_id = attachments.id) \
         AND NOT EXISTS (SELECT 1 FROM issue_attachments WHERE attachment_id = attachments.id)",
    )
    .bind(now)
    .bind(&linked)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(true)
}

/// Refuses, inside the caller's write transaction, attachments of `member_id` adding `adding` bytes
/// past `quota`. The member's row lock makes the check and the insert that follows one step for
/// every node: two uploads of one member wait for each other here.
pub(crate) async fn check_owner_quota(
    tx: &mut Transaction<'static, Postgres>,
    member_id: i64,
    adding: i64,
    quota: Option<i64>,
) -> StoreResult<()> {
    let Some(quota) = quota else {
        return Ok(());
    };
    sqlx::query("SELECT 1 FROM members WHERE id = $1 FOR NO KEY UPDATE")
        .bind(member_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let used = member_usage(&mut **tx, member_id).await?;
    if used.saturating_add(adding) > quota {
        return Err(rules::owner_quota_refusal(used, adding, quota));
    }
    Ok(())
}

async fn member_usage<'e>(
    db: impl sqlx::Executor<'e, Database = Postgres>,
    member_id: i64,
) -> StoreResult<i64> {
    sqlx::query_scalar(&format!(
        "SELECT COALESCE(SUM(size), 0)::BIGINT FROM attachments WHERE uploader_id = $1 \
         AND (stores_blob OR state IN ({}))",
        rules::UPLOADING_STATES
    ))
    .bind(member_id)
    .fetch_one(db)
    .await
    .map_err(backend)
}

/// The attachments linked to each of `owner_ids`, in link order.
pub(crate) async fn linked_attachments(
    pool: &PgPool,
    table: LinkTable,
    owner_ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<LinkedAttachment>>> {
    let mut out: HashMap<i64, Vec<LinkedAttachment>> = HashMap::new();
    if owner_ids.is_empty() {
        return Ok(out);
    }
    let (t, o) = (table.table(), table.owner());
    let sql = format!(
        "SELECT {ATTACHMENT_COLUMNS}, l.{o} AS owner_id, l.class_name, l.details \
         FROM {t} l JOIN attachments a ON a.id = l.attachment_id \
         WHERE l.{o} = ANY($1) ORDER BY l.{o}, l.position"
    );
    let query = sqlx::query(&sql).bind(owner_ids);
    for row in query.fetch_all(pool).await.map_err(backend)? {
        let (owner, linked) = rows::linked_attachment(&row);
        out.entry(owner).or_default().push(linked);
    }
    Ok(out)
}

/// A plain upload's record (see `PgStore::one_plain_upload`) as the batcher takes it.
#[derive(Clone)]
pub(crate) struct PlainUpload {
    new: NewAttachment,
    created_utc: i64,
    event_id: String,
    event: String,
    dispatch: NewJob,
}

impl PlainUpload {
    pub(crate) fn sha256(&self) -> &str {
        &self.new.sha256
    }

    fn of(new: &NewAttachment) -> Self {
        let event_id = hangar_core::ids::time_ordered_key();
        let created_utc = now_ms();
        let dispatch = NewJob::of(
            &DispatchEvent {
                event_id: event_id.clone(),
            },
            created_utc,
        );
        PlainUpload {
            event: rules::attachment_created(new, None).to_string(),
            new: new.clone(),
            created_utc,
            event_id,
            dispatch,
        }
    }
}

/// The statement of `record_plain_uploads`. Each upload's blob reference (the pin dropped, or the
/// placed bytes' key written on a new row and a placed copy of content stored already queued for
/// its discard), row, event, and the event's dispatch when an application may receive it, as
/// data-modifying `WITH` items over the batch's columns (`$1` to `$3`, `$5` to `$16`, `$19` and
/// `$20`, the discard's job kind `$21`); answers the rows with the columns every read uses and whether a job was queued. The
/// blobs' rows are locked in hash order, as the long way locks them.
static RECORD_PLAIN_UPLOADS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Every dispatch job is queued alike: the first's conflict rule is every one's.
    let dispatch = NewJob::of(
        &DispatchEvent {
            event_id: String::new(),
        },
        0,
    );
    format!(
        "WITH u AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $5::BIGINT[], \
             $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::BIGINT[], \
             $12::TEXT[], $13::TEXT[], $14::TEXT[], $15::BIGINT[], $19::TEXT[], $20::TEXT[]) \
           AS u(sha256, size, pin, id, uploader_id, file_name, content_type, state, media_context, \
             created_utc, event_id, event, job, run_after, placed, discard)), \
         unpinned AS (DELETE FROM blob_pins WHERE id = ANY($3::TEXT[])), \
         ref AS (INSERT INTO blobs (sha256, size, refcount, scan_state, object_key) \
           SELECT sha256, size, 1, NULL, placed FROM u ORDER BY sha256 {REF_EXISTING_BLOB} \
           RETURNING sha256, object_key), \
         discarded AS (INSERT INTO jobs (kind, payload, unique_key, run_after, created_utc) \
           SELECT $21, u.discard, NULL, u.created_utc, u.created_utc FROM u JOIN ref USING (sha256) \
           WHERE u.placed IS NOT NULL AND ref.object_key IS DISTINCT FROM u.placed RETURNING 1), \
         a AS (INSERT INTO attachments (id, uploader_id, file_name, content_type, size, sha256, \
             stores_blob, state, media_context, created_utc, modified_utc) \
           SELECT u.id, u.uploader_id, u.file_name, u.content_type, u.size, u.sha256, TRUE, u.state, \
             u.media_context, u.created_utc, u.created_utc FROM u JOIN ref USING (sha256) RETURNING *), \
         ev AS (INSERT INTO events (id, event_type, space_id, actor_id, payload, created_utc, dispatched) \
           SELECT u.event_id, 'Attachment.Created', NULL, u.uploader_id, u.event, u.created_utc, \
             $16 AND NOT EXISTS (SELECT 1 FROM app_items WHERE kind = $17) FROM a JOIN u USING (id) \
           RETURNING id, dispatched), \
         job AS (INSERT INTO jobs (kind, payload, unique_key, run_after, created_utc) \
           SELECT $18, u.job, NULL, u.run_after, u.created_utc FROM ev JOIN u ON u.event_id = ev.id \
           WHERE NOT ev.dispatched ON CONFLICT (unique_key) {} RETURNING 1) \
         SELECT {ATTACHMENT_COLUMNS}, \
           EXISTS (SELECT 1 FROM job) OR EXISTS (SELECT 1 FROM discarded) AS queued FROM a",
        on_conflict(&dispatch)
    )
});

/// Records the plain uploads of `batch` in one statement, committed on its own (the long way,
/// `record_attachments`, makes the same changes in five round trips per upload: the transaction's
/// begin and commit, and three statements). An upload whose blob is being deleted is refused as the
/// long way refuses it, and nothing of it is recorded. No two uploads of `batch` may store the same
/// blob (one statement cannot update a row twice). Answers each upload's row, and whether its
/// statement queued a job.
pub(crate) async fn record_plain_uploads(
    pool: &PgPool,
    batch: Vec<PlainUpload>,
) -> StoreResult<Vec<StoreResult<(Attachment, bool)>>> {
    let mut sha256 = Vec::with_capacity(batch.len());
    let (mut size, mut pin, mut id, mut uploader) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut name, mut content_type, mut state, mut context) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut placed, mut discard) = (Vec::new(), Vec::new());
    let (mut created, mut event_id, mut event, mut job, mut run_after) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for u in &batch {
        let a = &u.new;
        sha256.push(a.sha256.as_str());
        size.push(a.size);
        let hold = a.hold.as_ref();
        pin.push(hold.and_then(BlobHold::pin));
        placed.push(hold.and_then(BlobHold::placed));
        discard.push(rules::discard_duplicate(hold, None).map(|job| job.payload.to_string()));
        id.push(a.id);
        uploader.push(a.uploader_id);
        name.push(a.file_name.as_str());
        content_type.push(a.content_type.as_str());
        state.push(a.state.as_str());
        context.push(a.media_context.as_deref());
        created.push(u.created_utc);
        event_id.push(u.event_id.as_str());
        event.push(u.event.as_str());
        job.push(u.dispatch.payload.to_string());
        run_after.push(u.dispatch.run_after);
    }
    let rows = sqlx::query(RECORD_PLAIN_UPLOADS.as_str())
        .bind(&sha256)
        .bind(&size)
        .bind(&pin)
        .bind(false)
        .bind(&id)
        .bind(&uploader)
        .bind(&name)
        .bind(&content_type)
        .bind(&state)
        .bind(&context)
        .bind(&created)
        .bind(&event_id)
        .bind(&event)
        .bind(&job)
        .bind(&run_after)
        .bind(rules::may_skip_dispatch("Attachment.Created"))
        .bind(ItemKind::Subscription.as_str())
        .bind(<DispatchEvent as hangar_core::jobs::JobKind>::KIND)
        .bind(&placed)
        .bind(&discard)
        .bind(<DiscardObject as hangar_core::jobs::JobKind>::KIND)
        .fetch_all(pool)
        .await
        .map_err(backend)?;
    let mut recorded: HashMap<i64, (Attachment, bool)> = rows
        .iter()
        .map(|row| {
            let a = rows::attachment(row);
            (a.id, (a, row.flag_at("queued")))
        })
        .collect();
    Ok(batch
        .iter()
        .map(|u| recorded.remove(&u.new.id).ok_or_else(StoreError::blob_busy))
        .collect())
}

impl PgStore {
    /// The upload most requests make (one attachment storing a blob: no message, no quota, no
    /// scan, no preview), or None when `record_attachments` must take the long way.
    fn one_plain_upload<'a>(
        &self,
        new: &'a [NewAttachment],
        message_id: Option<i64>,
        owner_quota: Option<i64>,
    ) -> Option<&'a NewAttachment> {
        let [a] = new else { return None };
        let plain = a.stores_blob
            && message_id.is_none()
            && owner_quota.is_none()
            && !self.scanning
            && MakePreviews::for_attachment(&a.sha256, &a.content_type, 0).is_none();
        plain.then_some(a)
    }

    /// Records `new` in one transaction and answers their rows as committed, read inside it (no
    /// second trip to the pool after the commit).
    async fn record_attachments(
        &self,
        new: &[NewAttachment],
        message_id: Option<i64>,
        owner_quota: Option<i64>,
    ) -> StoreResult<Vec<Attachment>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        // Whether a job was queued: only then are this process's job runners woken after the
        // commit (each wake-up costs every runner two queries; most uploads queue nothing).
        let mut queued = false;
        // Members first, in id order, then blobs: one lock order for every upload.
        for uploader in new
            .iter()
            .map(|a| a.uploader_id)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let adding = new
                .iter()
                .filter(|a| a.uploader_id == uploader && a.stores_blob)
                .map(|a| a.size)
                .sum();
            check_owner_quota(&mut tx, uploader, adding, owner_quota).await?;
        }
        // Blob rows are locked in hash order; a deadlock with a transaction that took them in another
        // order (a replaced file: new bytes, then old) is retried.
        let mut refs: Vec<&NewAttachment> = new.iter().filter(|a| a.stores_blob).collect();
        refs.sort_by(|x, y| x.sha256.cmp(&y.sha256));
        for a in refs {
            let file = FileRef::Attachment {
                id: a.id,
                file_name: &a.file_name,
                size: a.size,
            };
            queued |= add_ref(
                &mut tx,
                &a.sha256,
                a.size,
                a.hold.as_ref(),
                self.scanned(file),
            )
            .await?;
        }
        // Without a message, nothing later in the transaction changes the rows: each insert answers
        // its own row. With one, the links update them, so they are read at the end.
        let insert = format!(
            "INSERT INTO attachments AS a (id, uploader_id, file_name, content_type, size, sha256, stores_blob, \
             state, media_context, created_utc, modified_utc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING {ATTACHMENT_COLUMNS}"
        );
        let mut out = Vec::with_capacity(new.len());
        for a in new {
            let row = sqlx::query(&insert)
                .bind(a.id)
                .bind(a.uploader_id)
                .bind(&a.file_name)
                .bind(&a.content_type)
                .bind(a.size)
                .bind(&a.sha256)
                .bind(a.stores_blob)
                .bind(a.state.as_str())
                .bind(&a.media_context)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            out.push(rows::attachment(&row));
            if a.stores_blob
                && a.state == hangar_core::AttachmentState::ReadyForDownloadFromServerToClient
            {
                queued |=
                    super::previews::queue_previews(&mut tx, &a.sha256, &a.content_type).await?;
            }
        }
        if let Some(message_id) = message_id {
            // The message's row lock orders link positions between uploads to one message.
            let room: i64 = sqlx::query_scalar(
                "SELECT channel_id FROM messages WHERE id = $1 FOR NO KEY UPDATE",
            )
            .bind(message_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound("message"))?;
            let links = rules::file_links(new);
            insert_links(&mut tx, LinkTable::Message, message_id, Some(room), &links).await?;
            let ids: Vec<i64> = new.iter().map(|a| a.id).collect();
            let linked = sqlx::query(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.id = ANY($1)"
            ))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            let mut by_id: HashMap<i64, Attachment> = linked
                .iter()
                .map(|row| {
                    let a = rows::attachment(row);
                    (a.id, a)
                })
                .collect();
            out = ids
                .iter()
                .map(|id| by_id.remove(id).ok_or(StoreError::NotFound("attachment")))
                .collect::<StoreResult<_>>()?;
        }
        for a in new {
            let payload = rules::attachment_created(a, message_id);
            queued |= record_event(
                &mut tx,
                "Attachment.Created",
                None,
                Some(a.uploader_id),
                payload,
            )
            .await?;
        }
        if queued {
            self.commit_queued(tx).await?;
        } else {
            commit(tx).await?;
        }
        Ok(out)
    }
}

#[async_trait]
impl AttachmentStore for PgStore {
    async fn create_attachments(
        &self,
        new: &[NewAttachment],
        message_id: Option<i64>,
        owner_quota: Option<i64>,
    ) -> StoreResult<Vec<Attachment>> {
        if let Some(a) = self.one_plain_upload(new, message_id, owner_quota) {
            let (row, _) = self.plain_uploads.submit(PlainUpload::of(a)).await?;
            return Ok(vec![row]);
        }
        retrying(|| self.record_attachments(new, message_id, owner_quota)).await
    }

    async fn attachment(&self, id: i64) -> StoreResult<Option<Attachment>> {
        let row = sqlx::query(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(rows::attachment))
    }

    async fn attachment_for_download(&self, id: i64) -> StoreResult<Option<Attachment>> {
        let now = now_ms();
        let ticket = match self.cache.attachment(id, now) {
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
        let ticket = match self.cache.reader(attachment_id, member_id, now) {
            Ok(()) => return Ok(true),
            Err(ticket) => ticket,
        };
        let readable: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM message_attachments ma \
                 JOIN messages msg ON msg.id = ma.message_id \
                 JOIN channel_members cm ON cm.channel_id = msg.channel_id \
                 WHERE ma.attachment_id = $1 AND cm.member_id = $2) \
             OR EXISTS (SELECT 1 FROM issue_attachments ia \
                 JOIN issues i ON i.id = ia.issue_id \
                 JOIN project_members pm ON pm.project_id = i.project_id \
                 WHERE ia.attachment_id = $3 AND pm.member_id = $4)",
        )
        .bind(attachment_id)
        .bind(member_id)
        .bind(attachment_id)
        .bind(member_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        if readable {
            self.cache
                .store_reader(ticket, attachment_id, member_id, now);
        }
        Ok(readable)
    }

    async fn is_linked_to_message(&self, attachment_id: i64, message_id: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM message_attachments WHERE attachment_id = $1 AND message_id = $2",
        )
        .bind(attachment_id)
        .bind(message_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn publish(&self, id: i64) -> StoreResult<i64> {
        let mut tx = self.write().await?;
        let version = sqlx::query_scalar(
            "UPDATE attachments SET public = TRUE, modified_utc = $1 WHERE id = $2 RETURNING link_version",
        )
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound("attachment"))?;
        self.commit_announced(tx, &[Invalidation::Attachment(id)])
            .await?;
        Ok(version)
    }

    async fn revoke_public_link(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE attachments SET public = FALSE, link_version = link_version + 1, modified_utc = $1 WHERE id = $2",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        self.commit_announced(tx, &[Invalidation::Attachment(id)])
            .await
    }

    async fn delete_attachment(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let row: Option<(Option<String>, bool)> =
            sqlx::query_as("DELETE FROM attachments WHERE id = $1 RETURNING sha256, stores_blob")
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
            Some((Some(sha), true)) => drop_ref(&mut tx, &sha, self.blob_grace_ms).await?,
            Some(_) => {}
        }
        self.commit_queued_announced(tx, &[Invalidation::Attachment(id)])
            .await
    }

    async fn member_usage(&self, member_id: i64) -> StoreResult<i64> {
        member_usage(&self.pool, member_id).await
    }

    async fn unattached_before(&self, cutoff: i64, limit: i64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(&format!(
            "SELECT id FROM attachments WHERE COALESCE(detached_utc, created_utc) < $1 \
             AND state NOT IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM message_attachments WHERE attachment_id = attachments.id) \
             AND NOT EXISTS (SELECT 1 FROM issue_attachments WHERE attachment_id = attachments.id) \
             ORDER BY id LIMIT $2",
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
