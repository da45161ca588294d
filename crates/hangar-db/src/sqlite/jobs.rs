//! The job queue on SQLite. Claims run in `BEGIN IMMEDIATE` transactions, which SQLite serializes
//! across processes, so two workers never take the same job; a lease that runs out makes a job
//! claimable again. (On PostgreSQL the same claim is `FOR UPDATE SKIP LOCKED`.)

use super::{backend, SqliteStore};
use crate::rules::MAX_ERROR_LEN;
use async_trait::async_trait;
use hangar_core::jobs::{ClaimedJob, JobStore, NewJob, QueueCounts};
use hangar_core::now_ms;
use hangar_core::store::StoreResult;
use sqlx::{Row, SqliteConnection};

/// The statement that enqueues `job`: binds its kind, payload, unique key, time due and now.
pub(crate) fn enqueue_sql(job: &NewJob) -> &'static str {
    if job.keep_existing {
        "INSERT INTO jobs (kind, payload, unique_key, run_after, created_utc) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (unique_key) DO NOTHING"
    } else {
        "INSERT INTO jobs (kind, payload, unique_key, run_after, created_utc) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (unique_key) DO UPDATE SET run_after = MAX(jobs.run_after, excluded.run_after), \
         state = 'queued', attempts = 0, payload = excluded.payload"
    }
}

/// Enqueues a job inside the caller's transaction, so the job exists exactly when the change that
/// causes it commits. With a unique key, a queued job of that key is moved to the later time
/// instead; a running one is put back in the queue, so the change is seen by a fresh run.
pub(crate) async fn enqueue_in(conn: &mut SqliteConnection, job: &NewJob) -> StoreResult<()> {
    sqlx::query(enqueue_sql(job))
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

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(&self, job: &NewJob) -> StoreResult<()> {
        let mut tx = self.write().await?;
        enqueue_in(&mut tx, job).await?;
        tx.commit().await.map_err(backend)?;
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
            (true, false) => String::new(),
            (false, _) => format!(
                "AND kind {}IN ({})",
                if only { "" } else { "NOT " },
                vec!["?"; kinds.len()].join(", ")
            ),
        };
        let now = now_ms();
        let due = format!(
            "((state = 'queued' AND run_after <= ?) OR (state = 'running' AND lease_until <= ?)) {lane}"
        );
        // A read first, and the write lock only when there is something to claim: the runner
        // wakes after every durable commit of the uploads' group writer, which would otherwise
        // wait for this transaction's lock each time, mostly for nothing.
        let probe_sql = format!("SELECT EXISTS (SELECT 1 FROM jobs WHERE {due})");
        let mut probe = sqlx::query_scalar::<_, i64>(&probe_sql).bind(now).bind(now);
        for kind in kinds {
            probe = probe.bind(*kind);
        }
        if probe.fetch_one(&self.queue_pool).await.map_err(backend)? == 0 {
            return Ok(vec![]);
        }
        let mut tx = self.queue_write().await?;
        let lease_until = now + lease_ms;
        let sql = format!(
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE {due} ORDER BY run_after LIMIT ?) \
             RETURNING id, kind, payload, attempts"
        );
        let mut query = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(now);
        for kind in kinds {
            query = query.bind(*kind);
        }
        let rows = query
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| ClaimedJob {
                id: r.get("id"),
                kind: r.get("kind"),
                payload: serde_json::from_str(r.get::<&str, _>("payload"))
                    .unwrap_or(serde_json::Value::Null),
                attempts: r.get("attempts"),
            })
            .collect())
    }

    async fn extend_lease(&self, id: i64, owner: &str, lease_until: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
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
        sqlx::query("DELETE FROM jobs WHERE id = ? AND lease_owner = ? AND state = 'running'")
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
            "UPDATE jobs SET state = ?, run_after = ?, last_error = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
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
            "SELECT COUNT(*) FROM jobs WHERE kind = ? \
             AND (state = 'running' OR (state = 'queued' AND run_after <= ?))",
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
