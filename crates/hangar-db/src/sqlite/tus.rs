//! Resumable (tus) uploads: offsets, leases and expiry, and the attachment each one fills.

use super::attachments::check_owner_quota;
use super::blobs::{add_ref, record_event};
use super::jobs::enqueue_in;
use super::{backend, SqliteStore, Tx};
use crate::rows::{self, TUS_COLUMNS};
use crate::rules::FileRef;
use async_trait::async_trait;
use hangar_core::jobs::{ExpireTusUpload, NewJob};
use hangar_core::model::{Attachment, NewAttachment};
use hangar_core::now_ms;
use hangar_core::store::{
    AttachmentStore, StoreError, StoreResult, TusAttachmentDone, TusEnd, TusEnded, TusStore,
};
use hangar_core::tus::{TusClaim, TusState, TusTarget, TusUpload};
use hangar_core::AttachmentState;

/// Queues (or moves) the upload's expiry job to `at`.
async fn queue_expiry(tx: &mut Tx, id: &str, at: i64) -> StoreResult<()> {
    let job = NewJob::of(
        &ExpireTusUpload {
            upload_id: id.to_string(),
        },
        at,
    )
    .unique(ExpireTusUpload::unique_key(id));
    enqueue_in(tx, &job).await
}

async fn upload_in(tx: &mut Tx, id: &str) -> StoreResult<Option<TusUpload>> {
    let row = sqlx::query(&format!(
        "SELECT {TUS_COLUMNS} FROM tus_uploads WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(row.as_ref().map(rows::tus_upload))
}

/// Moves the upload's attachment (if any) from one in-progress state to another.
async fn set_attachment_state(
    tx: &mut Tx,
    id: &str,
    from: AttachmentState,
    to: AttachmentState,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE attachments SET state = ?, modified_utc = ? WHERE state = ? \
         AND id = (SELECT attachment_id FROM tus_uploads WHERE id = ?)",
    )
    .bind(to.as_str())
    .bind(now_ms())
    .bind(from.as_str())
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl TusStore for SqliteStore {
    async fn create_tus_upload(
        &self,
        upload: &TusUpload,
        attachment: Option<&NewAttachment>,
        owner_quota: Option<i64>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if let Some(a) = attachment {
            check_owner_quota(&mut tx, a.uploader_id, a.size, owner_quota).await?;
            sqlx::query(
                "INSERT INTO attachments (id, uploader_id, file_name, content_type, size, sha256, stores_blob, \
                 state, media_context, created_utc, modified_utc) VALUES (?, ?, ?, ?, ?, NULL, 0, ?, ?, ?, ?)",
            )
            .bind(a.id)
            .bind(a.uploader_id)
            .bind(&a.file_name)
            .bind(&a.content_type)
            .bind(a.size)
            .bind(a.state.as_str())
            .bind(&a.media_context)
            .bind(upload.created_utc)
            .bind(upload.created_utc)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        let (attachment_id, space_id, path) = match &upload.target {
            TusTarget::Attachment { attachment_id } => (Some(*attachment_id), None, None),
            TusTarget::Storage { space_id, path } => (None, Some(space_id), Some(path)),
        };
        sqlx::query(&format!(
            "INSERT INTO tus_uploads ({TUS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&upload.id)
        .bind(upload.owner_id)
        .bind(upload.length)
        .bind(upload.offset)
        .bind(&upload.metadata)
        .bind(&upload.file_name)
        .bind(&upload.content_type)
        .bind(attachment_id)
        .bind(space_id)
        .bind(path)
        .bind(&upload.declared_sha256)
        .bind(upload.state.as_str())
        .bind(upload.lease_until)
        .bind(upload.expires_utc)
        .bind(upload.created_utc)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        queue_expiry(&mut tx, &upload.id, upload.expires_utc).await?;
        self.commit_queued(tx).await
    }

    async fn tus_upload(&self, id: &str) -> StoreResult<Option<TusUpload>> {
        let row = sqlx::query(&format!(
            "SELECT {TUS_COLUMNS} FROM tus_uploads WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(rows::tus_upload))
    }

    async fn claim_tus_upload(
        &self,
        id: &str,
        offset: i64,
        lease_until: i64,
        now: i64,
    ) -> StoreResult<TusClaim> {
        let mut tx = self.write().await?;
        let claimed = sqlx::query(
            "UPDATE tus_uploads SET lease_until = ?, state = 'receiving' WHERE id = ? \
             AND state IN ('receiving', 'completing') AND \"offset\" = ? AND expires_utc > ? \
             AND COALESCE(lease_until, 0) <= ?",
        )
        .bind(lease_until)
        .bind(id)
        .bind(offset)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if claimed.rows_affected() == 1 {
            // A completion cut short left its attachment verifying: it receives again.
            set_attachment_state(
                &mut tx,
                id,
                AttachmentState::ChecksumVerificationOnServerSideInProgress,
                AttachmentState::UploadFromClientToServerInProgress,
            )
            .await?;
        }
        let outcome = if claimed.rows_affected() == 1 {
            TusClaim::Claimed
        } else {
            match upload_in(&mut tx, id).await? {
                None => TusClaim::NotReceiving,
                Some(u) if u.state == TusState::Done || u.expires_utc <= now => {
                    if u.lease_until.is_some_and(|l| l > now) {
                        TusClaim::Busy
                    } else {
                        TusClaim::NotReceiving
                    }
                }
                Some(u) if u.lease_until.is_some_and(|l| l > now) => TusClaim::Busy,
                Some(u) => TusClaim::WrongOffset(u.offset),
            }
        };
        tx.commit().await.map_err(backend)?;
        Ok(outcome)
    }

    async fn renew_tus_lease(&self, id: &str, lease_until: i64) -> StoreResult<bool> {
        let renewed = sqlx::query(
            "UPDATE tus_uploads SET lease_until = ? WHERE id = ? AND lease_until IS NOT NULL \
             AND state != 'done'",
        )
        .bind(lease_until)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn advance_tus_upload(
        &self,
        id: &str,
        from: i64,
        to: i64,
        expires_utc: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let moved = sqlx::query(
            "UPDATE tus_uploads SET \"offset\" = ?, expires_utc = ?, lease_until = NULL \
             WHERE id = ? AND \"offset\" = ? AND state = 'receiving'",
        )
        .bind(to)
        .bind(expires_utc)
        .bind(id)
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        queue_expiry(&mut tx, id, expires_utc).await?;
        self.commit_queued(tx).await?;
        Ok(true)
    }

    async fn begin_tus_completion(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE tus_uploads SET state = 'completing' WHERE id = ? AND state = 'receiving'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        set_attachment_state(
            &mut tx,
            id,
            AttachmentState::UploadFromClientToServerInProgress,
            AttachmentState::ChecksumVerificationOnServerSideInProgress,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn release_tus_upload(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let reopened = sqlx::query(
            "UPDATE tus_uploads SET state = 'receiving', lease_until = NULL \
             WHERE id = ? AND state != 'done'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if reopened.rows_affected() > 0 {
            set_attachment_state(
                &mut tx,
                id,
                AttachmentState::ChecksumVerificationOnServerSideInProgress,
                AttachmentState::UploadFromClientToServerInProgress,
            )
            .await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn complete_tus_attachment(
        &self,
        id: &str,
        done: &TusAttachmentDone,
    ) -> StoreResult<Attachment> {
        let mut tx = self.write().await?;
        let upload = upload_in(&mut tx, id)
            .await?
            .filter(|u| u.state != TusState::Done)
            .ok_or(StoreError::NotFound("upload"))?;
        let TusTarget::Attachment { attachment_id } = upload.target else {
            return Err(StoreError::NotFound("attachment"));
        };
        let stores_blob = done.hold.is_some();
        if stores_blob {
            let scanned = self.scanned(FileRef::Attachment {
                id: attachment_id,
                file_name: &upload.file_name,
                size: done.size,
            });
            add_ref(
                &mut tx,
                &done.sha256,
                done.size,
                done.hold.as_ref(),
                scanned,
            )
            .await?;
        }
        let updated = sqlx::query(
            "UPDATE attachments SET size = ?1, sha256 = ?2, stores_blob = ?3, state = ?4, modified_utc = ?5, \
             blob_seq = CASE WHEN ?3 THEN (SELECT seq FROM blobs WHERE sha256 = ?2) END \
             WHERE id = ?6",
        )
        .bind(done.size)
        .bind(&done.sha256)
        .bind(stores_blob as i64)
        .bind(done.state.as_str())
        .bind(now_ms())
        .bind(attachment_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("attachment"));
        }
        sqlx::query(
            "UPDATE tus_uploads SET state = 'done', \"offset\" = length, lease_until = NULL WHERE id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let created = NewAttachment {
            id: attachment_id,
            uploader_id: upload.owner_id,
            file_name: upload.file_name.clone(),
            content_type: upload.content_type.clone(),
            size: done.size,
            sha256: done.sha256.clone(),
            state: done.state,
            media_context: None,
            stores_blob,
            hold: None,
        };
        if stores_blob && done.state == AttachmentState::ReadyForDownloadFromServerToClient {
            super::previews::queue_previews(&mut tx, &done.sha256, &upload.content_type).await?;
        }
        let payload = crate::rules::attachment_created(&created, None);
        record_event(
            &mut tx,
            "Attachment.Created",
            None,
            Some(upload.owner_id),
            payload,
        )
        .await?;
        self.commit_queued(tx).await?;
        self.attachment(attachment_id)
            .await?
            .ok_or(StoreError::NotFound("attachment"))
    }

    async fn end_tus_upload(&self, id: &str, how: TusEnd, now: i64) -> StoreResult<TusEnded> {
        let mut tx = self.write().await?;
        let Some(upload) = upload_in(&mut tx, id).await? else {
            return Ok(TusEnded::Missing);
        };
        if let Some(lease) = upload.lease_until.filter(|l| *l > now) {
            return Ok(TusEnded::Busy(lease));
        }
        if how == TusEnd::Expire && upload.expires_utc > now {
            return Ok(TusEnded::NotYet(upload.expires_utc));
        }
        sqlx::query("DELETE FROM tus_uploads WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if let (TusTarget::Attachment { attachment_id }, false) =
            (&upload.target, upload.state == TusState::Done)
        {
            match how {
                // Never created as far as anyone was told: it goes without an event.
                TusEnd::Terminate => {
                    sqlx::query("DELETE FROM attachments WHERE id = ? AND stores_blob = 0")
                        .bind(attachment_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                TusEnd::Expire => {
                    sqlx::query(
                        "UPDATE attachments SET state = ?, modified_utc = ? WHERE id = ? AND stores_blob = 0",
                    )
                    .bind(AttachmentState::UploadFromClientToServerFailed.as_str())
                    .bind(now)
                    .bind(attachment_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(TusEnded::Ended(Box::new(upload)))
    }
}
