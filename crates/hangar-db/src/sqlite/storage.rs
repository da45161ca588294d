//! Workspace storage: entries, quota reservations, two-stage uploads.

use super::blobs::{add_ref, drop_ref, record_event};
use super::{backend, map_err, SqliteStore, Tx};
use crate::rows::{self, EVENT_COLUMNS};
use crate::rules::{fits_quota, inside_bounds, parent_of, refused, FileRef, RESERVATION_LEASE_MS};
use async_trait::async_trait;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::{StorageStore, StoreError, StoreResult};
use serde_json::json;
use sqlx::Row;

async fn entry_in(
    tx: &mut Tx,
    space_id: &str,
    path: &StoragePath,
) -> StoreResult<Option<StorageEntry>> {
    let row = sqlx::query("SELECT * FROM storage_entries WHERE space_id = ? AND path = ?")
        .bind(space_id)
        .bind(path.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    row.as_ref().map(rows::storage_entry).transpose()
}

/// Makes sure every directory above `path` exists, refusing when one of them is a file.
async fn ensure_parents(
    tx: &mut Tx,
    space_id: &str,
    path: &StoragePath,
    now: i64,
) -> StoreResult<()> {
    for dir in path.ancestors() {
        match entry_in(tx, space_id, &dir).await? {
            Some(e) if e.kind == EntryKind::File => {
                return Err(refused(
                    "under-a-file",
                    format!(
                        "{} is a file, so nothing can be stored under it",
                        dir.as_str()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO storage_entries (space_id, path, parent, name, kind, created_utc, modified_utc) \
                     VALUES (?, ?, ?, ?, 'dir', ?, ?)",
                )
                .bind(space_id)
                .bind(dir.as_str())
                .bind(parent_of(&dir))
                .bind(dir.name())
                .bind(now)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
            }
        }
    }
    Ok(())
}

async fn add_usage(tx: &mut Tx, space_id: &str, delta: i64) -> StoreResult<()> {
    if delta != 0 {
        sqlx::query("UPDATE spaces SET used_bytes = used_bytes + ? WHERE id = ?")
            .bind(delta)
            .bind(space_id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Whether `extra` more bytes fit the space's quota beside its usage and the other reservations.
async fn fits(
    tx: &mut Tx,
    space_id: &str,
    extra: i64,
    except_reservation: i64,
) -> StoreResult<Option<bool>> {
    let row = sqlx::query(
        "SELECT quota_bytes, used_bytes, \
           (SELECT COALESCE(SUM(bytes), 0) FROM storage_reservations \
             WHERE space_id = spaces.id AND expires_utc > ? AND id != ?) AS reserved \
         FROM spaces WHERE id = ?",
    )
    .bind(now_ms())
    .bind(except_reservation)
    .bind(space_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(row.map(|r| {
        let quota: Option<i64> = r.get("quota_bytes");
        let used: i64 = r.get("used_bytes");
        let reserved: i64 = r.get("reserved");
        fits_quota(quota, used, reserved, extra)
    }))
}

/// Removes one file row, releasing its blob reference and its size.
async fn remove_file(tx: &mut Tx, entry: &StorageEntry, grace_ms: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM storage_entries WHERE space_id = ? AND path = ?")
        .bind(&entry.space_id)
        .bind(entry.path.as_str())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    add_usage(tx, &entry.space_id, -entry.size).await?;
    if let Some(sha) = &entry.sha256 {
        drop_ref(tx, sha, grace_ms).await?;
    }
    Ok(())
}

#[async_trait]
impl StorageStore for SqliteStore {
    async fn entry(&self, space_id: &str, path: &StoragePath) -> StoreResult<Option<StorageEntry>> {
        let row = sqlx::query("SELECT * FROM storage_entries WHERE space_id = ? AND path = ?")
            .bind(space_id)
            .bind(path.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::storage_entry).transpose()
    }

    async fn list_dir(
        &self,
        space_id: &str,
        dir: Option<&StoragePath>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StorageEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM storage_entries WHERE space_id = ? AND parent = ? AND name > ? ORDER BY name LIMIT ?",
        )
        .bind(space_id)
        .bind(dir.map(|d| d.as_str()).unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::storage_entry).collect()
    }

    async fn usage(&self, space_id: &str) -> StoreResult<Option<Usage>> {
        let row = sqlx::query(
            "SELECT quota_bytes, used_bytes, \
               (SELECT COALESCE(SUM(bytes), 0) FROM storage_reservations \
                 WHERE space_id = spaces.id AND expires_utc > ?) AS reserved \
             FROM spaces WHERE id = ?",
        )
        .bind(now_ms())
        .bind(space_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|r| Usage {
            quota_bytes: r.get("quota_bytes"),
            used_bytes: r.get("used_bytes"),
            reserved_bytes: r.get("reserved"),
        }))
    }

    async fn reserve(
        &self,
        space_id: &str,
        bytes: i64,
        upload_id: Option<&str>,
        expires_utc: i64,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.write().await?;
        match fits(&mut tx, space_id, bytes, 0).await? {
            None => return Err(StoreError::NotFound("space")),
            Some(false) => return Ok(None),
            Some(true) => {}
        }
        let id = hangar_core::ids::random_id();
        sqlx::query("INSERT INTO storage_reservations (id, space_id, bytes, upload_id, expires_utc) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(space_id)
            .bind(bytes)
            .bind(upload_id)
            .bind(if upload_id.is_some() { expires_utc } else { now_ms() + RESERVATION_LEASE_MS })
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(id))
    }

    async fn resize_reservation(&self, id: i64, bytes: i64) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let space_id: Option<String> =
            sqlx::query_scalar("SELECT space_id FROM storage_reservations WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(space_id) = space_id else {
            return Err(StoreError::NotFound("reservation"));
        };
        if fits(&mut tx, &space_id, bytes, id).await? != Some(true) {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE storage_reservations SET bytes = ?, expires_utc = MAX(expires_utc, ?) WHERE id = ?",
        )
        .bind(bytes)
        .bind(now_ms() + RESERVATION_LEASE_MS)
        .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn release_reservation(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM storage_reservations WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn renew_reservation(&self, id: i64) -> StoreResult<()> {
        let until = now_ms() + RESERVATION_LEASE_MS;
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE storage_reservations SET expires_utc = MAX(expires_utc, ?) WHERE id = ?",
        )
        .bind(until)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE storage_uploads SET lease_until = ? WHERE state = 'receiving' \
             AND id = (SELECT upload_id FROM storage_reservations WHERE id = ?)",
        )
        .bind(until)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn put_file(
        &self,
        space_id: &str,
        path: &StoragePath,
        file: &NewStorageFile,
        reservation: Option<i64>,
        upload_id: Option<&str>,
        actor_id: i64,
    ) -> StoreResult<PutOutcome> {
        let now = now_ms();
        let mut tx = self.write().await?;
        // The space may have been deleted while the bytes arrived.
        let space: Option<i64> = sqlx::query_scalar("SELECT 1 FROM spaces WHERE id = ?")
            .bind(space_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if space.is_none() {
            return Err(StoreError::NotFound("space"));
        }
        ensure_parents(&mut tx, space_id, path, now).await?;
        let existing = entry_in(&mut tx, space_id, path).await?;
        if existing.as_ref().is_some_and(|e| e.kind == EntryKind::Dir) {
            return Err(refused(
                "is-a-directory",
                format!("{} is a directory", path.as_str()),
            ));
        }
        let scanned = self.scanned(FileRef::StorageFile {
            space_id,
            path: path.as_str(),
        });
        // Whether a job was queued (a scan, a collection of replaced bytes, an event's dispatch):
        // only then are this process's job runners woken after the commit.
        let mut queued = add_ref(
            &mut tx,
            &file.sha256,
            file.size,
            file.hold.as_ref(),
            scanned,
        )
        .await?;
        let meta = file.meta.as_ref().map(|m| m.to_string());
        let created_utc = match &existing {
            Some(old) => {
                sqlx::query(
                    "UPDATE storage_entries SET size = ?, content_type = ?, sha256 = ?, meta = ?, modified_utc = ? \
                     WHERE space_id = ? AND path = ?",
                )
                .bind(file.size)
                .bind(&file.content_type)
                .bind(&file.sha256)
                .bind(&meta)
                .bind(now)
                .bind(space_id)
                .bind(path.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                if let Some(sha) = &old.sha256 {
                    // May queue the old bytes' collection.
                    drop_ref(&mut tx, sha, self.blob_grace_ms).await?;
                    queued = true;
                }
                old.created_utc
            }
            None => {
                sqlx::query(
                    "INSERT INTO storage_entries (space_id, path, parent, name, kind, size, content_type, sha256, meta, \
                     created_utc, modified_utc) VALUES (?, ?, ?, ?, 'file', ?, ?, ?, ?, ?, ?)",
                )
                .bind(space_id)
                .bind(path.as_str())
                .bind(parent_of(path))
                .bind(path.name())
                .bind(file.size)
                .bind(&file.content_type)
                .bind(&file.sha256)
                .bind(&meta)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                now
            }
        };
        let delta = file.size - existing.as_ref().map_or(0, |e| e.size);
        let reserved: i64 = match reservation {
            Some(id) => {
                sqlx::query_scalar("DELETE FROM storage_reservations WHERE id = ? RETURNING bytes")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?
                    .unwrap_or(0)
            }
            None => 0,
        };
        // What the reservation did not cover (it expired, or the file replaced in the meantime
        // shrank) must still fit.
        if delta > reserved && fits(&mut tx, space_id, delta - reserved, 0).await? == Some(false) {
            return Err(refused(
                "limits-reached",
                "the space's quota does not leave room for this file".into(),
            ));
        }
        add_usage(&mut tx, space_id, delta).await?;
        if let Some(id) = upload_id {
            sqlx::query("UPDATE storage_uploads SET state = 'done' WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            // A resumable upload to this path is complete with the file (SPEC §9.1).
            sqlx::query(
                "UPDATE tus_uploads SET state = 'done', \"offset\" = length, lease_until = NULL WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        let event = if existing.is_some() {
            "StorageFile.Updated"
        } else {
            "StorageFile.Created"
        };
        let payload = json!({
            "spaceId": space_id, "path": path.as_str(), "id": path.id(),
            "size": file.size, "type": file.content_type, "checksum": file.sha256,
        });
        queued |= record_event(&mut tx, event, Some(space_id), Some(actor_id), payload).await?;
        if queued {
            self.commit_queued(tx).await?;
        } else {
            tx.commit().await.map_err(backend)?;
        }
        Ok(PutOutcome {
            entry: StorageEntry {
                space_id: space_id.to_string(),
                path: path.clone(),
                kind: EntryKind::File,
                size: file.size,
                content_type: Some(file.content_type.clone()),
                sha256: Some(file.sha256.clone()),
                meta: file.meta.clone(),
                created_utc,
                modified_utc: now,
            },
            created: existing.is_none(),
        })
    }

    async fn delete_entry(
        &self,
        space_id: &str,
        path: &StoragePath,
        recursive: bool,
        actor_id: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let entry = entry_in(&mut tx, space_id, path)
            .await?
            .ok_or(StoreError::NotFound("file"))?;

        if entry.kind == EntryKind::Dir {
            if !recursive {
                return Err(refused(
                    "is-a-directory",
                    format!(
                        "{} is a directory: delete it with ?recursive=true",
                        path.as_str()
                    ),
                ));
            }
            let (low, high) = inside_bounds(path);
            let rows = sqlx::query(
                "SELECT * FROM storage_entries WHERE space_id = ? AND path >= ? AND path < ? AND kind = 'file'",
            )
            .bind(space_id)
            .bind(&low)
            .bind(&high)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            for row in &rows {
                let file = rows::storage_entry(row)?;
                remove_file(&mut tx, &file, self.blob_grace_ms).await?;
                let payload =
                    json!({"spaceId": space_id, "path": file.path.as_str(), "id": file.path.id()});
                record_event(
                    &mut tx,
                    "StorageFile.Deleted",
                    Some(space_id),
                    Some(actor_id),
                    payload,
                )
                .await?;
            }
            sqlx::query("DELETE FROM storage_entries WHERE space_id = ? AND (path = ? OR (path >= ? AND path < ?))")
                .bind(space_id)
                .bind(path.as_str())
                .bind(&low)
                .bind(&high)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        } else {
            remove_file(&mut tx, &entry, self.blob_grace_ms).await?;
            let payload = json!({"spaceId": space_id, "path": path.as_str(), "id": path.id()});
            record_event(
                &mut tx,
                "StorageFile.Deleted",
                Some(space_id),
                Some(actor_id),
                payload,
            )
            .await?;
        }
        self.commit_queued(tx).await
    }

    async fn move_entry(
        &self,
        space_id: &str,
        from: &StoragePath,
        to: &StoragePath,
        overwrite: bool,
        actor_id: i64,
    ) -> StoreResult<StorageEntry> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let source = entry_in(&mut tx, space_id, from)
            .await?
            .ok_or(StoreError::NotFound("file"))?;
        if from == to {
            return Ok(source);
        }
        if to.is_inside(from) {
            return Err(refused(
                "into-itself",
                format!("{} cannot move inside itself", from.as_str()),
            ));
        }

        match entry_in(&mut tx, space_id, to).await? {
            Some(target) if target.kind == EntryKind::Dir => {
                return Err(refused(
                    "is-a-directory",
                    format!("{} is a directory", to.as_str()),
                ));
            }
            Some(target) if overwrite && source.kind == EntryKind::File => {
                remove_file(&mut tx, &target, self.blob_grace_ms).await?;
            }
            Some(_) => {
                return Err(refused(
                    "already-exists",
                    format!(
                        "{} exists: pass \"overwrite\": true to replace it",
                        to.as_str()
                    ),
                ));
            }
            None => {}
        }
        ensure_parents(&mut tx, space_id, to, now).await?;
        let (low, high) = inside_bounds(from);
        let rows = sqlx::query(
            "SELECT * FROM storage_entries WHERE space_id = ? AND (path = ? OR (path >= ? AND path < ?))",
        )
        .bind(space_id)
        .bind(from.as_str())
        .bind(&low)
        .bind(&high)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for row in &rows {
            let old = rows::storage_entry(row)?;
            let new_path = old
                .path
                .rebase(from, to)
                .ok_or_else(|| StoreError::Backend("a moved entry is outside its source".into()))?;
            if StoragePath::parse(new_path.as_str()).is_err() {
                return Err(refused(
                    "path-too-long",
                    format!(
                        "moving would make {} longer than 1024 bytes",
                        new_path.as_str()
                    ),
                ));
            }
            sqlx::query(
                "UPDATE storage_entries SET path = ?, parent = ?, name = ?, modified_utc = ? \
                 WHERE space_id = ? AND path = ?",
            )
            .bind(new_path.as_str())
            .bind(parent_of(&new_path))
            .bind(new_path.name())
            .bind(now)
            .bind(space_id)
            .bind(old.path.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err("storage entry"))?;
        }
        let payload = json!({
            "spaceId": space_id, "from": from.as_str(), "to": to.as_str(), "id": to.id(),
            "kind": source.kind.as_str(),
        });
        record_event(
            &mut tx,
            "StorageFile.Moved",
            Some(space_id),
            Some(actor_id),
            payload,
        )
        .await?;
        let moved = entry_in(&mut tx, space_id, to)
            .await?
            .ok_or(StoreError::NotFound("file"))?;
        self.commit_queued(tx).await?;
        Ok(moved)
    }

    async fn create_upload(&self, u: &PendingUpload) -> StoreResult<()> {
        // BEGIN IMMEDIATE: no other writer between the count and the insert.
        let mut tx = self.write().await?;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM storage_uploads WHERE uploader_id = ? \
             AND state IN ('pending', 'receiving') AND expires_utc > ?",
        )
        .bind(u.uploader_id)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if open >= crate::rules::MAX_OPEN_UPLOADS_PER_MEMBER {
            return Err(crate::rules::too_many_uploads());
        }
        sqlx::query(
            "INSERT INTO storage_uploads (id, space_id, path, size, content_type, meta, uploader_id, reservation_id, \
             state, expires_utc, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.space_id)
        .bind(u.path.as_str())
        .bind(u.size)
        .bind(&u.content_type)
        .bind(u.meta.to_string())
        .bind(u.uploader_id)
        .bind(u.reservation_id)
        .bind(u.state.as_str())
        .bind(u.expires_utc)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(map_err("upload"))?;
        tx.commit().await.map_err(backend)
    }

    async fn pending_upload(&self, id: &str) -> StoreResult<Option<PendingUpload>> {
        let row = sqlx::query("SELECT * FROM storage_uploads WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::pending_upload).transpose()
    }

    async fn uploads_at(&self, space_id: &str, path: &StoragePath) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT id FROM storage_uploads WHERE space_id = ? AND path = ? AND state != 'done' \
             AND expires_utc > ? ORDER BY created_utc, id",
        )
        .bind(space_id)
        .bind(path.as_str())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn claim_upload(&self, id: &str) -> StoreResult<bool> {
        self.claim_upload_for(id, RESERVATION_LEASE_MS).await
    }

    async fn claim_upload_for(&self, id: &str, lease_ms: i64) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let now = now_ms();
        // A receiver whose lease ran out died (or hung) with the upload: it can be tried again.
        let done = sqlx::query(
            "UPDATE storage_uploads SET state = 'receiving', lease_until = ? WHERE id = ? \
             AND (state = 'pending' OR (state = 'receiving' AND COALESCE(lease_until, 0) <= ?))",
        )
        .bind(now + lease_ms)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // While bytes arrive the reservation must keep counting, even past the URL's expiry.
        sqlx::query(
            "UPDATE storage_reservations SET expires_utc = MAX(expires_utc, ?) WHERE upload_id = ?",
        )
        .bind(now + lease_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_upload_claim(&self, id: &str, lease_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE storage_uploads SET lease_until = ? WHERE id = ? AND state = 'receiving'",
        )
        .bind(now_ms() + lease_ms)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn unclaim_upload(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE storage_uploads SET state = 'pending', lease_until = NULL WHERE id = ? AND state = 'receiving'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE storage_reservations SET expires_utc = \
               (SELECT expires_utc FROM storage_uploads WHERE storage_uploads.id = storage_reservations.upload_id) \
             WHERE upload_id = ? AND EXISTS (SELECT 1 FROM storage_uploads WHERE id = ?)",
        )
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn expire_uploads(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM storage_uploads WHERE expires_utc <= ? \
             AND (state != 'receiving' OR COALESCE(lease_until, 0) <= ?)",
        )
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "DELETE FROM storage_reservations WHERE expires_utc <= ? \
             OR (upload_id IS NOT NULL AND upload_id NOT IN (SELECT id FROM storage_uploads WHERE state != 'done'))",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn recent_events(&self, limit: i64) -> StoreResult<Vec<Event>> {
        let found = sqlx::query(&format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(found
            .iter()
            .map(|r| rows::storage_event(rows::event(r)))
            .collect())
    }
}
