//! Spaces and their members.

use super::blobs::drop_ref;
use super::{backend, map_err, SqliteStore};
use crate::rows;
use async_trait::async_trait;
use hangar_core::model::Space;
use hangar_core::now_ms;
use hangar_core::store::{SpaceStore, StoreResult};

impl SqliteStore {
    async fn space_members(&self, space_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT m.username FROM space_members sm JOIN members m ON m.id = sm.member_id \
             WHERE sm.space_id = ? ORDER BY m.username",
        )
        .bind(space_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }
}

#[async_trait]
impl SpaceStore for SqliteStore {
    async fn create_space(
        &self,
        id: &str,
        name: &str,
        quota_bytes: Option<i64>,
    ) -> StoreResult<Space> {
        let created = now_ms();
        sqlx::query("INSERT INTO spaces (id, name, quota_bytes, used_bytes, created_utc) VALUES (?, ?, ?, 0, ?)")
            .bind(id)
            .bind(name)
            .bind(quota_bytes)
            .bind(created)
            .execute(&self.pool)
            .await
            .map_err(map_err("space"))?;
        Ok(Space {
            id: id.to_string(),
            name: name.to_string(),
            quota_bytes,
            used_bytes: 0,
            created_utc: created,
            members: Vec::new(),
        })
    }

    async fn space(&self, id: &str) -> StoreResult<Option<Space>> {
        let row = sqlx::query("SELECT * FROM spaces WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let mut space = rows::space(&r);
                space.members = self.space_members(id).await?;
                Ok(Some(space))
            }
        }
    }

    async fn list_spaces(&self, member_id: Option<i64>) -> StoreResult<Vec<Space>> {
        let rows = match member_id {
            None => {
                sqlx::query("SELECT * FROM spaces ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
            }
            Some(m) => {
                sqlx::query(
                    "SELECT s.* FROM spaces s JOIN space_members sm ON sm.space_id = s.id \
                     WHERE sm.member_id = ? ORDER BY s.id",
                )
                .bind(m)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(backend)?;
        let mut spaces = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut space = rows::space(r);
            space.members = self.space_members(&space.id).await?;
            spaces.push(space);
        }
        Ok(spaces)
    }

    async fn update_space(
        &self,
        id: &str,
        name: Option<&str>,
        quota_bytes: Option<Option<i64>>,
    ) -> StoreResult<Option<Space>> {
        if let Some(name) = name {
            sqlx::query("UPDATE spaces SET name = ? WHERE id = ?")
                .bind(name)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        if let Some(quota) = quota_bytes {
            sqlx::query("UPDATE spaces SET quota_bytes = ? WHERE id = ?")
                .bind(quota)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        self.space(id).await
    }

    async fn delete_space(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let shas: Vec<String> = sqlx::query_scalar(
            "SELECT sha256 FROM storage_entries WHERE space_id = ? AND kind = 'file' AND sha256 IS NOT NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let done = sqlx::query("DELETE FROM spaces WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for sha in shas {
            drop_ref(&mut tx, &sha, self.blob_grace_ms).await?;
        }
        self.commit_queued(tx).await?;
        Ok(true)
    }

    async fn add_space_member(&self, space_id: &str, member_id: i64) -> StoreResult<()> {
        sqlx::query("INSERT OR IGNORE INTO space_members (space_id, member_id) VALUES (?, ?)")
            .bind(space_id)
            .bind(member_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn remove_space_member(&self, space_id: &str, member_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM space_members WHERE space_id = ? AND member_id = ?")
            .bind(space_id)
            .bind(member_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn is_space_member(&self, space_id: &str, member_id: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM space_members WHERE space_id = ? AND member_id = ?",
        )
        .bind(space_id)
        .bind(member_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn may_still_write(&self, space_id: &str, member_id: i64) -> StoreResult<bool> {
        let allowed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM members m WHERE m.id = ? AND m.deleted_utc IS NULL \
             AND m.disabled = 0 AND (m.role = 'admin' OR m.is_app = 1 \
             OR EXISTS (SELECT 1 FROM space_members s WHERE s.space_id = ? AND s.member_id = m.id)))",
        )
        .bind(member_id)
        .bind(space_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(allowed)
    }
}
