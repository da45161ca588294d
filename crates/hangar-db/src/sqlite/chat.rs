//! Channels, their members, and messages with attachment links.

use super::attachments::{delete_owner, insert_links, linked_attachments};
use super::blobs::record_event;
use super::{backend, SqliteStore};
use crate::rows::{self, StoreRow, MESSAGE_COLUMNS};
use crate::rules::LinkTable;
use async_trait::async_trait;
use hangar_core::ids::random_id;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::read_cache::Invalidation;
use hangar_core::store::{ChatStore, StoreError, StoreResult};

impl SqliteStore {
    async fn channel_members(&self, channel_id: i64) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT m.username FROM channel_members cm JOIN members m ON m.id = cm.member_id \
             WHERE cm.channel_id = ? ORDER BY m.username",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn messages_where(&self, filter: &str, binds: &[i64]) -> StoreResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages msg JOIN members m ON m.id = msg.author_id WHERE {filter}"
        );
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
        let mut messages: Vec<Message> = rows.iter().map(rows::message).collect();
        let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
        let mut links = linked_attachments(&self.pool, LinkTable::Message, &ids).await?;
        for message in &mut messages {
            message.attachments = links.remove(&message.id).unwrap_or_default();
        }
        Ok(messages)
    }
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn create_channel(&self, name: &str, member_ids: &[i64]) -> StoreResult<Channel> {
        let id = random_id();
        let created = now_ms();
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO channels (id, name, created_utc) VALUES (?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for m in member_ids {
            sqlx::query(
                "INSERT OR IGNORE INTO channel_members (channel_id, member_id) VALUES (?, ?)",
            )
            .bind(id)
            .bind(m)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Channel {
            id,
            name: name.to_string(),
            created_utc: created,
            members: self.channel_members(id).await?,
        })
    }

    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>> {
        let row = sqlx::query("SELECT id, name, created_utc FROM channels WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(Channel {
                id: r.int("id"),
                name: r.text("name"),
                created_utc: r.int("created_utc"),
                members: self.channel_members(id).await?,
            })),
        }
    }

    async fn list_channels(&self, member_id: Option<i64>) -> StoreResult<Vec<Channel>> {
        let ids: Vec<i64> =
            match member_id {
                None => {
                    sqlx::query_scalar("SELECT id FROM channels ORDER BY created_utc, id")
                        .fetch_all(&self.pool)
                        .await
                }
                Some(m) => sqlx::query_scalar(
                    "SELECT c.id FROM channels c JOIN channel_members cm ON cm.channel_id = c.id \
                 WHERE cm.member_id = ? ORDER BY c.created_utc, c.id",
                )
                .bind(m)
                .fetch_all(&self.pool)
                .await,
            }
            .map_err(backend)?;
        let mut channels = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.channel(id).await? {
                channels.push(c);
            }
        }
        Ok(channels)
    }

    async fn add_channel_member(&self, channel_id: i64, member_id: i64) -> StoreResult<()> {
        sqlx::query("INSERT OR IGNORE INTO channel_members (channel_id, member_id) VALUES (?, ?)")
            .bind(channel_id)
            .bind(member_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn is_channel_member(&self, channel_id: i64, member_id: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM channel_members WHERE channel_id = ? AND member_id = ?",
        )
        .bind(channel_id)
        .bind(member_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn create_message(
        &self,
        channel_id: i64,
        author_id: i64,
        text: &str,
        links: &[AttachmentLink],
    ) -> StoreResult<Message> {
        let id = random_id();
        let created = now_ms();
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO messages (id, channel_id, author_id, text, created_utc) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(channel_id)
            .bind(author_id)
            .bind(text)
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_links(&mut tx, LinkTable::Message, id, Some(channel_id), links).await?;
        let ids: Vec<i64> = links.iter().map(|l| l.attachment_id).collect();
        let payload = serde_json::json!({
            "messageId": id, "channelId": channel_id, "text": text, "attachmentIds": ids,
        });
        record_event(
            &mut tx,
            "ChatMessage.Created",
            None,
            Some(author_id),
            payload,
        )
        .await?;
        self.commit_queued(tx).await?;
        self.message(id)
            .await?
            .ok_or(StoreError::NotFound("message"))
    }

    async fn message(&self, id: i64) -> StoreResult<Option<Message>> {
        Ok(self.messages_where("msg.id = ?", &[id]).await?.pop())
    }

    async fn delete_message(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let channel_id: i64 = sqlx::query_scalar("SELECT channel_id FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound("message"))?;
        delete_owner(&mut tx, LinkTable::Message, id).await?;
        let payload = serde_json::json!({ "messageId": id, "channelId": channel_id });
        record_event(&mut tx, "ChatMessage.Deleted", None, None, payload).await?;
        self.commit_queued(tx).await?;
        self.invalidate(&[Invalidation::Readers]);
        Ok(())
    }

    async fn list_messages(
        &self,
        channel_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<Message>> {
        self.messages_where(
            "msg.channel_id = ? AND msg.seq > ? ORDER BY msg.seq LIMIT ?",
            &[channel_id, after_seq, limit],
        )
        .await
    }
}
