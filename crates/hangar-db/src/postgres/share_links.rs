//! Share links on PostgreSQL: one row per link, deleted with its file by the foreign keys, its download
//! count moved by one conditional update.

use super::{backend, map_err, PgStore};
use crate::rows::{self, SHARE_LINK_COLUMNS};
use async_trait::async_trait;
use hangar_core::model::{ShareLink, ShareTarget};
use hangar_core::store::{ShareLinkStore, StoreError, StoreResult};

#[async_trait]
impl ShareLinkStore for PgStore {
    async fn create_share_link(&self, link: &ShareLink, token_hash: &str) -> StoreResult<()> {
        let (attachment_id, space_id, path) = match &link.target {
            ShareTarget::Attachment(id) => (Some(*id), None, None),
            ShareTarget::StorageFile { space_id, path } => {
                (None, Some(space_id.as_str()), Some(path.as_str()))
            }
        };
        sqlx::query(
            "INSERT INTO share_links (id, token_hash, creator_id, attachment_id, space_id, path, \
             password_hash, expires_utc, max_downloads, downloads, created_utc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)",
        )
        .bind(link.id)
        .bind(token_hash)
        .bind(link.creator_id)
        .bind(attachment_id)
        .bind(space_id)
        .bind(path)
        .bind(&link.password_hash)
        .bind(link.expires_utc)
        .bind(link.max_downloads)
        .bind(link.created_utc)
        .execute(&self.pool)
        .await
        .map_err(map_err("share link"))
        .map_err(gone_is_not_found)?;
        Ok(())
    }

    async fn share_link_by_token(&self, token_hash: &str) -> StoreResult<Option<ShareLink>> {
        let row = sqlx::query(&format!(
            "SELECT {SHARE_LINK_COLUMNS} FROM share_links l JOIN members m ON m.id = l.creator_id \
             WHERE l.token_hash = $1 AND NOT m.disabled AND m.deleted_utc IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(rows::share_link).transpose()
    }

    async fn share_link(&self, id: i64) -> StoreResult<Option<ShareLink>> {
        let row = sqlx::query(&format!(
            "SELECT {SHARE_LINK_COLUMNS} FROM share_links l JOIN members m ON m.id = l.creator_id WHERE l.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(rows::share_link).transpose()
    }

    async fn list_share_links(&self, creator_id: Option<i64>) -> StoreResult<Vec<ShareLink>> {
        let rows = sqlx::query(&format!(
            "SELECT {SHARE_LINK_COLUMNS} FROM share_links l JOIN members m ON m.id = l.creator_id \
             WHERE $1::BIGINT IS NULL OR l.creator_id = $1 ORDER BY l.created_utc DESC, l.id"
        ))
        .bind(creator_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rows::share_link).collect()
    }

    async fn delete_share_link(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM share_links WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_share_download(&self, id: i64, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE share_links SET downloads = downloads + 1 WHERE id = $1 \
             AND (max_downloads IS NULL OR downloads < max_downloads) \
             AND (expires_utc IS NULL OR expires_utc > $2)",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn uncount_share_download(&self, id: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE share_links SET downloads = downloads - 1 WHERE id = $1 AND downloads > 0",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

/// The file went away between the check and the insert (its foreign key failed).
fn gone_is_not_found(e: StoreError) -> StoreError {
    match e {
        StoreError::Refused { code: "gone", .. } => StoreError::NotFound("file"),
        other => other,
    }
}
