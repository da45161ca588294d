//! The event outbox as webhooks read it, and the deliveries it produces.

use super::apps::{insert_delivery, upsert_item};
use super::jobs::enqueue_in;
use super::{backend, PgStore};
use crate::rows::{self, DELIVERY_COLUMNS, EVENT_COLUMNS};
use async_trait::async_trait;
use hangar_core::jobs::{Deliver, NewJob};
use hangar_core::store::*;

#[async_trait]
impl OutboxStore for PgStore {
    async fn event(&self, id: &str) -> StoreResult<Option<EventRecord>> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
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
        sqlx::query("UPDATE events SET dispatched = TRUE WHERE id = $1")
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
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"
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
            "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_utc = $3, last_status = $4, \
             last_error = $5 WHERE id = $6",
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
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE app_id = $1 AND ($2 IS NULL OR kind = $3) \
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
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE ($1::TEXT IS NULL OR status = $1) \
             ORDER BY created_utc DESC, id LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(rows::delivery).collect())
    }
    async fn retry_delivery(&self, id: &str) -> StoreResult<bool> {
        let now = hangar_core::now_ms();
        let mut tx = self.write().await?;
        // One UPDATE decides: of two nodes retrying the same delivery at once, one queues it.
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_utc = $1 \
             WHERE id = $2 AND status = 'failed'",
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
            sqlx::query("DELETE FROM deliveries WHERE status <> 'pending' AND created_utc < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        let queued =
            sqlx::query("DELETE FROM app_items WHERE kind = 'unfurl-queue' AND created_utc < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        let tokens = sqlx::query("DELETE FROM app_tokens WHERE expires_utc < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        // Only events the webhook dispatcher has handled: the rest are still to be delivered.
        let events = sqlx::query("DELETE FROM events WHERE created_utc < $1 AND dispatched")
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
