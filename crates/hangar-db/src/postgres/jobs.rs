//! The job queue on PostgreSQL. Claims take due rows with `FOR UPDATE SKIP LOCKED`, so workers on
//! any number of nodes never take the same job; a lease that runs out makes a job claimable again.

use super::{backend, commit, PgStore};
use crate::rows::StoreRow;
use crate::rules::MAX_ERROR_LEN;
use async_trait::async_trait;
use hangar_core::jobs::{ClaimedJob, JobStore, NewJob, QueueCounts};
use hangar_core::now_ms;
use hangar_core::store::StoreResult;
use sqlx::PgConnection;

/// Enqueues a job inside the caller's transaction, so the job exists exactly when the change that
/// causes it commits. With a unique key, a queued job of that key is moved to the later time
/// instead; a running one is put back in the queue, so the change is seen by a fresh run.
pub(crate) async fn enqueue_in(conn: &mut PgConnection, job: &NewJob) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO jobs (kind, payload, unique_key, run_after, created_utc) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (unique_key) {}",
        on_conflict(job)
    ))
    .bind(&job.kind)
    .bind(job.payload.to_string())
    .bind(&job.unique_key)
    .bind(job.run_after)
    .bind(now_ms())
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// What an enqueue does when a job of the same unique key exists (see `enqueue_in`).
pub(crate) fn on_conflict(job: &NewJob) -> &'static str {
    if job.keep_existing {
        "DO NOTHING"
    } else {
        "DO UPDATE SET run_after = GREATEST(jobs.run_after, excluded.run_after), state = 'queued', \
         attempts = 0, payload = excluded.payload"
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue(&self, job: &NewJob) -> StoreResult<()> {
        let mut tx = self.write().await?;
        enqueue_in(&mut tx, job).await?;
        commit(tx).await?;
        self.signal_jobs();
        Ok(())
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        kinds: &[&str],
        only: bool,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let lane = match (kinds.is_empty(), only) {
            (true, true) => return Ok(vec![]),
            (true, false) => "",
            (false, true) => "AND kind = ANY($4)",
            (false, false) => "AND kind <> ALL($4)",
        };
        // Each job is claimed once: the due rows are locked as they are picked, and rows that
        // another claim has locked are skipped rather than waited for, so claims on several nodes
        // run side by side and never take one job twice. A row that another claim took and
        // committed meanwhile is read again as it is now, and no longer due. Nothing waits, so the
        // time read here is the claim's time (SQLite reads it after taking its write lock).
        let now = now_ms();
        let sql = format!(
            "WITH due AS (SELECT id FROM jobs \
                WHERE ((state = 'queued' AND run_after <= $3) OR (state = 'running' AND lease_until <= $3)) {lane} \
                ORDER BY run_after LIMIT $5 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             FROM due WHERE jobs.id = due.id \
             RETURNING jobs.id, jobs.kind, jobs.payload, jobs.attempts"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(kinds)
            .bind(limit)
            .fetch_all(&self.queue_pool)
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| ClaimedJob {
                id: r.int("id"),
                kind: r.text("kind"),
                payload: serde_json::from_str(&r.text("payload"))
                    .unwrap_or(serde_json::Value::Null),
                attempts: r.int("attempts"),
            })
            .collect())
    }

    async fn extend_lease(&self, id: i64, owner: &str, lease_until: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(lease_until)
        .bind(id)
        .bind(owner)
        .execute(&self.queue_pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_job(&self, id: i64, owner: &str) -> StoreResult<()> {
        // A job enqueued again while it ran (same unique key) is back in 'queued' and stays.
        sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'")
            .bind(id)
            .bind(owner)
            .execute(&self.queue_pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn retry_job(
        &self,
        id: i64,
        owner: &str,
        run_after: i64,
        error: &str,
        give_up: bool,
    ) -> StoreResult<()> {
        let error: String = error.chars().take(MAX_ERROR_LEN).collect();
        sqlx::query(
            "UPDATE jobs SET state = $1, run_after = $2, last_error = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
        )
        .bind(if give_up { "failed" } else { "queued" })
        .bind(run_after)
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&self.queue_pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        let mut counts = QueueCounts::default();
        for (state, n) in rows {
            match state.as_str() {
                "queued" => counts.queued = n,
                "running" => counts.running = n,
                _ => counts.failed = n,
            }
        }
        Ok(counts)
    }

    async fn due_jobs(&self, kind: &str, now: i64) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = $1 \
             AND (state = 'running' OR (state = 'queued' AND run_after <= $2))",
        )
        .bind(kind)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn next_due(&self) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = 'queued' THEN run_after ELSE lease_until END) FROM jobs \
             WHERE state IN ('queued', 'running')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }
}
