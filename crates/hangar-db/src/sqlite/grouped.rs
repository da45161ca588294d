//! The writes that run in the group writer's transactions (see `group`), on its rusqlite
//! connection from cached prepared statements. The SQL is the pool's own (the constants beside each
//! concern's sqlx code), and so are the decisions (`rules`): only the driver differs.

use super::attachments::{
    attachment_sql, link_sql, member_usage_sql, FIRST_MESSAGE, INSERT_ATTACHMENT, MESSAGE_ROOM,
};
use super::blobs::{event_id, AddedRef, ADDED_REF, ADD_REF, DROP_PIN, RECORD_EVENT, SUBSCRIBED};
use super::jobs::enqueue_sql;
use super::{driver_error, Conn};
use crate::rows;
use crate::rules::{self, AfterRef, FileRef, LinkTable};
use hangar_core::app_model::ItemKind;
use hangar_core::jobs::{DispatchEvent, MakePreviews, NewJob};
use hangar_core::model::{Attachment, AttachmentLink, BlobHold, NewAttachment};
use hangar_core::now_ms;
use hangar_core::store::{StoreError, StoreResult};
use hangar_core::AttachmentState;
use rusqlite::OptionalExtension;
use std::collections::BTreeSet;

/// An event made ready before its write: its id and payload cost the writer's thread nothing.
pub(crate) struct NewEvent {
    id: String,
    payload: String,
}

impl NewEvent {
    pub(crate) fn of(payload: serde_json::Value) -> Self {
        NewEvent {
            id: event_id(),
            payload: payload.to_string(),
        }
    }
}

/// The `Attachment.Created` events of `new`, in its order, for `create_attachments`.
pub(crate) fn attachments_created(new: &[NewAttachment], message_id: Option<i64>) -> Vec<NewEvent> {
    new.iter()
        .map(|a| NewEvent::of(rules::attachment_created(a, message_id)))
        .collect()
}

/// Records new attachments (their blobs' references, rows, previews and scans queued, their
/// message's links, their events: `events`, from `attachments_created`) and answers them as
/// stored.
pub(crate) fn create_attachments(
    conn: &Conn,
    new: &[NewAttachment],
    events: &[NewEvent],
    message_id: Option<i64>,
    owner_quota: Option<i64>,
    scanning: bool,
) -> StoreResult<Vec<Attachment>> {
    if let Some(quota) = owner_quota {
        for uploader in new.iter().map(|a| a.uploader_id).collect::<BTreeSet<_>>() {
            let adding = new
                .iter()
                .filter(|a| a.uploader_id == uploader && a.stores_blob)
                .map(|a| a.size)
                .sum();
            let used: i64 = conn
                .prepare_cached(&member_usage_sql())
                .and_then(|mut usage| usage.query_row([uploader], |r| r.get(0)))
                .map_err(driver_error)?;
            if used.saturating_add(adding) > quota {
                return Err(rules::owner_quota_refusal(used, adding, quota));
            }
        }
    }
    let now = now_ms();
    for a in new {
        let mut blob_seq = None;
        if a.stores_blob {
            let file = FileRef::Attachment {
                id: a.id,
                file_name: &a.file_name,
                size: a.size,
            };
            blob_seq = Some(add_ref(
                conn,
                &a.sha256,
                a.size,
                a.hold.as_ref(),
                scanning.then_some(file),
            )?);
        }
        conn.prepare_cached(INSERT_ATTACHMENT)
            .and_then(|mut insert| {
                insert.execute((
                    a.id,
                    a.uploader_id,
                    &a.file_name,
                    &a.content_type,
                    a.size,
                    &a.sha256,
                    a.stores_blob as i64,
                    a.state.as_str(),
                    &a.media_context,
                    now,
                    now,
                    blob_seq,
                ))
            })
            .map_err(driver_error)?;
        if a.stores_blob && a.state == AttachmentState::ReadyForDownloadFromServerToClient {
            if let Some(job) = MakePreviews::for_attachment(&a.sha256, &a.content_type, now) {
                enqueue(conn, &job)?;
            }
        }
    }
    if let Some(message_id) = message_id {
        let room: i64 = conn
            .prepare_cached(MESSAGE_ROOM)
            .and_then(|mut find| find.query_row([message_id], |r| r.get(0)).optional())
            .map_err(driver_error)?
            .ok_or(StoreError::NotFound("message"))?;
        link_to_message(conn, message_id, room, &rules::file_links(new))?;
    }
    for (a, event) in new.iter().zip(events) {
        record_event(conn, "Attachment.Created", None, Some(a.uploader_id), event)?;
    }
    if message_id.is_some() {
        // Linked to a message: its first message and room were written by the links.
        let mut read = conn
            .prepare_cached(&attachment_sql())
            .map_err(driver_error)?;
        return new
            .iter()
            .map(|a| {
                read.query_row([a.id], |row| Ok(rows::attachment(row)))
                    .optional()
                    .map_err(driver_error)?
                    .ok_or(StoreError::NotFound("attachment"))
            })
            .collect();
    }
    // The rows as written, without reading each back: only a ready attachment's preview comes
    // from elsewhere (its content's, when an earlier upload of the same bytes made one).
    let mut preview = conn.prepare_cached(READY_PREVIEW).map_err(driver_error)?;
    new.iter()
        .map(|a| {
            let size = match a.state {
                AttachmentState::ReadyForDownloadFromServerToClient => preview
                    .query_row([&a.sha256], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(driver_error)?,
                _ => None,
            };
            Ok(rules::recorded_attachment(a, now, size))
        })
        .collect()
}

/// The size of a content's ready preview (binds its hash), as `ATTACHMENT_COLUMNS` reads it.
const READY_PREVIEW: &str =
    "SELECT width, height FROM preview_sources WHERE sha256 = ? AND state = 'ready'";

/// `blobs::add_ref` on the writer's connection; answers the blob's number (`blobs.seq`).
fn add_ref(
    conn: &Conn,
    sha256: &str,
    size: i64,
    hold: Option<&BlobHold>,
    scan: Option<FileRef<'_>>,
) -> StoreResult<i64> {
    let placed = hold.and_then(BlobHold::placed);
    let added = conn
        .prepare_cached(ADD_REF)
        .and_then(|mut add| {
            add.execute((
                sha256,
                size,
                scan.map(|_| "pending"),
                placed,
                scan.is_some(),
            ))
        })
        .map_err(driver_error)?;
    if added == 0 {
        return Err(StoreError::blob_busy());
    }
    let (state, detail, key, seq): AddedRef = conn
        .prepare_cached(ADDED_REF)
        .and_then(|mut read| {
            read.query_row([sha256], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
        })
        .map_err(driver_error)?;
    if let Some(pin) = hold.and_then(BlobHold::pin) {
        conn.prepare_cached(DROP_PIN)
            .and_then(|mut drop| drop.execute([pin]))
            .map_err(driver_error)?;
    }
    if let Some(job) = rules::discard_duplicate(hold, key.as_deref()) {
        enqueue(conn, &job)?;
    }
    match rules::after_ref(scan, sha256, state.as_deref(), detail.as_deref()) {
        Some(AfterRef::Scan(job)) => enqueue(conn, &job),
        Some(AfterRef::Quarantine {
            kind,
            space,
            payload,
        }) => record_event(conn, kind, space.as_deref(), None, &NewEvent::of(payload)),
        None => Ok(()),
    }?;
    Ok(seq)
}

/// `jobs::enqueue_in` on the writer's connection.
fn enqueue(conn: &Conn, job: &NewJob) -> StoreResult<()> {
    conn.prepare_cached(enqueue_sql(job))
        .and_then(|mut insert| {
            insert.execute((
                &job.kind,
                job.payload.to_string(),
                &job.unique_key,
                job.run_after,
                now_ms(),
            ))
        })
        .map_err(driver_error)?;
    conn.queued_job();
    Ok(())
}

/// `blobs::record_event` on the writer's connection, of an event made ready before.
fn record_event(
    conn: &Conn,
    event_type: &str,
    space_id: Option<&str>,
    actor_id: Option<i64>,
    event: &NewEvent,
) -> StoreResult<()> {
    let dispatched = rules::may_skip_dispatch(event_type)
        && !conn
            .prepare_cached(SUBSCRIBED)
            .and_then(|mut subscribed| {
                subscribed.query_row([ItemKind::Subscription.as_str()], |r| r.get::<_, bool>(0))
            })
            .map_err(driver_error)?;
    conn.prepare_cached(RECORD_EVENT)
        .and_then(|mut insert| {
            insert.execute((
                &event.id,
                event_type,
                space_id,
                actor_id,
                &event.payload,
                now_ms(),
                dispatched,
            ))
        })
        .map_err(driver_error)?;
    if dispatched {
        return Ok(());
    }
    enqueue(
        conn,
        &NewJob::of(
            &DispatchEvent {
                event_id: event.id.clone(),
            },
            now_ms(),
        ),
    )
}

/// `attachments::insert_links` of a message on the writer's connection.
fn link_to_message(
    conn: &Conn,
    message_id: i64,
    room_id: i64,
    links: &[AttachmentLink],
) -> StoreResult<()> {
    let [next_position, insert_link] = link_sql(LinkTable::Message);
    let start: i64 = conn
        .prepare_cached(&next_position)
        .and_then(|mut next| next.query_row([message_id], |r| r.get(0)))
        .map_err(driver_error)?;
    for (i, link) in links.iter().enumerate() {
        let details = serde_json::Value::Object(link.details.clone()).to_string();
        conn.prepare_cached(&insert_link)
            .and_then(|mut insert| {
                insert.execute((
                    message_id,
                    link.attachment_id,
                    start + i as i64,
                    &link.class_name,
                    details,
                ))
            })
            .map_err(driver_error)?;
        conn.prepare_cached(FIRST_MESSAGE)
            .and_then(|mut first| {
                first.execute((message_id, room_id, now_ms(), link.attachment_id))
            })
            .map_err(driver_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use hangar_core::jobs::JobStore;
    use hangar_core::model::{BlobHold, NewAttachment, Role};
    use hangar_core::store::{AttachmentStore, BlobLifecycleStore, IdentityStore};
    use hangar_core::AttachmentState;

    fn upload(uploader: i64, content_type: &str, sha: char) -> NewAttachment {
        NewAttachment {
            id: hangar_core::ids::random_id(),
            uploader_id: uploader,
            file_name: "f".into(),
            content_type: content_type.into(),
            size: 4,
            sha256: sha.to_string().repeat(64),
            state: AttachmentState::ReadyForDownloadFromServerToClient,
            media_context: None,
            stores_blob: true,
            hold: Some(BlobHold::Pin(format!("pin-{sha}"))),
        }
    }

    /// The group writer wakes this process's job runners after a batch that queued a job (an
    /// image's previews), and not after one that queued none, which before woke them to look for
    /// due jobs after every upload. The record itself is what the pool reads back.
    #[tokio::test]
    async fn only_records_that_queue_jobs_wake_the_job_runners() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("hangar.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let alice = store
            .create_member("alice", "h", "Alice", Role::Member)
            .await
            .unwrap();
        let mut signal = store.job_signal();
        signal.mark_unchanged();
        let later = hangar_core::now_ms() + 60_000;

        let plain = upload(alice.id, "application/octet-stream", 'a');
        assert!(store.pin_blob("pin-a", &plain.sha256, later).await.unwrap());
        let stored = store
            .create_attachments(std::slice::from_ref(&plain), None, None)
            .await
            .unwrap();
        assert!(!signal.has_changed().unwrap());
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].id, plain.id);
        assert_eq!(stored[0].sha256.as_deref(), Some(&*plain.sha256));
        // The row read back in the writer's transaction is the row the pool reads.
        let read = store.attachment(plain.id).await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", stored[0]));
        assert_eq!(store.due_jobs("make-previews", later).await.unwrap(), 0);

        let image = upload(alice.id, "image/png", 'b');
        store
            .create_attachments(std::slice::from_ref(&image), None, None)
            .await
            .unwrap();
        assert!(signal.has_changed().unwrap());
        assert_eq!(store.due_jobs("make-previews", later).await.unwrap(), 1);

        // Another upload of content whose preview is ready answers it, as the pool reads it.
        use hangar_core::store::PreviewStore;
        store
            .record_previews(&image.sha256, 40, 20, &[])
            .await
            .unwrap();
        let mut again = upload(alice.id, "image/png", 'b');
        again.hold = None;
        let stored = store
            .create_attachments(std::slice::from_ref(&again), None, None)
            .await
            .unwrap();
        assert!(stored[0].has_thumbnail);
        assert_eq!((stored[0].width, stored[0].height), (Some(40), Some(20)));
        let read = store.attachment(again.id).await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", stored[0]));
        store.close().await;
    }

    /// `sqlite::memory:` is one in-memory database, shared by the pool and the writer's own
    /// connection, and no file: sqlx names it `file:sqlx-in-memory-N`, which the store once took
    /// for a path and created (with its cache-epoch file) in the working directory.
    #[tokio::test]
    async fn an_in_memory_database_is_shared_with_the_writer_and_leaves_no_file() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let alice = store
            .create_member("alice", "h", "Alice", Role::Member)
            .await
            .unwrap();
        let a = upload(alice.id, "application/octet-stream", 'c');
        store
            .create_attachments(std::slice::from_ref(&a), None, None)
            .await
            .unwrap();
        let read = store.attachment(a.id).await.unwrap().unwrap();
        assert_eq!((read.id, read.size), (a.id, 4));
        let strays: Vec<_> = std::fs::read_dir(".")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("file:sqlx-in-memory")
            })
            .map(|e| e.file_name())
            .collect();
        assert!(
            strays.is_empty(),
            "files made for an in-memory database: {strays:?}"
        );
        assert_eq!(
            SqliteStore::probe("sqlite::memory:").await.unwrap(),
            super::super::Probe::Missing {
                path: ":memory:".into()
            }
        );
        store.close().await;
    }
}
