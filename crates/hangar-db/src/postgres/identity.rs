//! Members, sessions and personal tokens.

use super::{backend, map_err, PgStore};
use crate::rows::{self, StoreRow, MEMBER_COLUMNS, PERSONAL_TOKEN_COLUMNS};
use crate::rules::{last_admin, tombstone_username, SESSION_USE_RESOLUTION_MS};
use async_trait::async_trait;
use hangar_core::ids::random_id;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::read_cache::Invalidation;
use hangar_core::store::{
    AttemptStore, IdentityStore, MemberControlStore, MemberUpdate, StoreError, StoreResult,
};

#[async_trait]
impl IdentityStore for PgStore {
    async fn member_count(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM members")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn create_member(
        &self,
        username: &str,
        password_hash: &str,
        display_name: &str,
        role: Role,
    ) -> StoreResult<Member> {
        let member = Member {
            id: random_id(),
            username: username.to_string(),
            display_name: display_name.to_string(),
            role,
            created_utc: now_ms(),
        };
        sqlx::query(
            "INSERT INTO members (id, username, password_hash, display_name, role, created_utc) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(member.id)
        .bind(username)
        .bind(password_hash)
        .bind(display_name)
        .bind(role.as_str())
        .bind(member.created_utc)
        .execute(&self.pool)
        .await
        .map_err(map_err("member"))?;
        Ok(member)
    }

    async fn member_credentials(&self, username: &str) -> StoreResult<Option<(Member, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS}, m.password_hash FROM members m \
             WHERE m.username = $1 AND NOT m.is_app AND NOT m.disabled"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|r| (rows::member(&r), r.text("password_hash"))))
    }

    async fn member_by_username(&self, username: &str) -> StoreResult<Option<Member>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members m WHERE m.username = $1 AND NOT m.is_app \
             AND m.deleted_utc IS NULL"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(rows::member))
    }

    async fn set_password(&self, member_id: i64, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE members SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        self.commit_announced(tx, &[Invalidation::Callers]).await
    }

    async fn list_members(&self) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members m WHERE NOT m.is_app AND m.deleted_utc IS NULL \
             ORDER BY m.username"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(rows::member).collect())
    }

    async fn create_session(
        &self,
        token_hash: &str,
        member_id: i64,
        expires_utc: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, member_id, expires_utc, last_used_utc) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(member_id)
        .bind(expires_utc)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(map_err("session"))?;
        Ok(())
    }

    async fn session_member(
        &self,
        token_hash: &str,
        now: i64,
        idle_since: i64,
    ) -> StoreResult<Option<Member>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS}, s.last_used_utc FROM sessions s \
             JOIN members m ON m.id = s.member_id \
             WHERE s.token_hash = $1 AND s.expires_utc > $2 AND s.last_used_utc > $3 \
             AND NOT m.disabled"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(idle_since)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        // Recorded once a minute, or more often under an idle time-out shorter than two minutes.
        let resolution = SESSION_USE_RESOLUTION_MS.min((now - idle_since) / 2);
        if row.int(5) < now - resolution {
            sqlx::query("UPDATE sessions SET last_used_utc = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(Some(rows::member(&row)))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn end_sessions(&self, member_id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE member_id = $1")
            .bind(member_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn purge_sessions(&self, now: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_utc <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn create_token(&self, token: &PersonalToken, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO personal_tokens (id, member_id, name, token_hash, scope, expires_utc, created_utc, \
             parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token.id)
        .bind(token.member_id)
        .bind(&token.name)
        .bind(token_hash)
        .bind(token.scope.to_text())
        .bind(token.expires_utc)
        .bind(token.created_utc)
        .bind(token.made_with)
        .execute(&self.pool)
        .await
        .map_err(map_err("token"))?;
        Ok(())
    }

    async fn token_member(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(Member, PersonalToken)>> {
        let ticket = match self.cache.personal(token_hash, now) {
            Ok(found) => return Ok(Some(found)),
            Err(ticket) => ticket,
        };
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS}, {PERSONAL_TOKEN_COLUMNS} \
             FROM personal_tokens t JOIN members m ON m.id = t.member_id \
             WHERE t.token_hash = $1 AND (t.expires_utc IS NULL OR t.expires_utc > $2) AND NOT m.is_app \
             AND NOT m.disabled"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let found = row.map(|r| (rows::member_at(&r, 0), rows::personal_token_at(&r, 5)));
        if let Some(found) = &found {
            self.cache.store_personal(ticket, token_hash, found, now);
        }
        Ok(found)
    }

    async fn list_tokens(&self, member_id: i64) -> StoreResult<Vec<PersonalToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {PERSONAL_TOKEN_COLUMNS} FROM personal_tokens t WHERE t.member_id = $1 \
             ORDER BY t.created_utc, t.id"
        ))
        .bind(member_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(|r| rows::personal_token_at(r, 0)).collect())
    }

    async fn touch_token(&self, token_id: i64, now: i64) -> StoreResult<()> {
        // The cache first: requests that authenticate while this update waits for the write lock
        // then see the token as used and queue no update of their own (under many concurrent
        // uploads dozens did, each holding a pooled connection while it waited). A failed update
        // only leaves `last_used_utc` a minute staler in the database, as the caller accepts.
        self.cache.personal_used(token_id, now);
        sqlx::query("UPDATE personal_tokens SET last_used_utc = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_token(&self, member_id: i64, token_id: i64) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM personal_tokens WHERE id = $1 AND member_id = $2")
            .bind(token_id)
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Tokens made with it went with it (ON DELETE CASCADE): every caller entry goes.
        self.commit_announced(tx, &[Invalidation::Callers]).await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Ends every session of the member and revokes every token it holds or approved.
/// Tokens made with those tokens go with them (`parent_id … ON DELETE CASCADE`). The session
/// `keep_session` (a token hash), if any, stays.
async fn revoke_all(
    tx: &mut super::Tx,
    member_id: i64,
    keep_session: Option<&str>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE member_id = $1 AND token_hash IS DISTINCT FROM $2")
        .bind(member_id)
        .bind(keep_session)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    for sql in [
        "DELETE FROM personal_tokens WHERE member_id = $1",
        "DELETE FROM app_tokens WHERE member_id = $1",
        "DELETE FROM app_tokens WHERE minted_by = $1",
    ] {
        sqlx::query(sql)
            .bind(member_id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl MemberControlStore for PgStore {
    async fn reset_password(&self, member_id: i64, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE members SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        revoke_all(&mut tx, member_id, None).await?;
        self.commit_announced(tx, &[Invalidation::Callers, Invalidation::Readers])
            .await
    }

    async fn disable_member(&self, member_id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE members SET disabled = TRUE WHERE id = $1")
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        revoke_all(&mut tx, member_id, None).await?;
        self.commit_announced(tx, &[Invalidation::Callers, Invalidation::Readers])
            .await
    }

    async fn is_disabled(&self, member_id: i64) -> StoreResult<bool> {
        let disabled: Option<bool> =
            sqlx::query_scalar("SELECT disabled FROM members WHERE id = $1")
                .bind(member_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(disabled == Some(true))
    }

    async fn change_member(&self, member_id: i64, change: &MemberUpdate) -> StoreResult<()> {
        let mut tx = self.write().await?;
        keep_an_admin(&mut tx, member_id, change, false).await?;
        let set = |column: &'static str| format!("UPDATE members SET {column} = $1 WHERE id = $2");
        if let Some(name) = &change.display_name {
            sqlx::query(&set("display_name"))
                .bind(name)
                .bind(member_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        if let Some(role) = change.role {
            sqlx::query(&set("role"))
                .bind(role.as_str())
                .bind(member_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        if let Some(hash) = &change.password_hash {
            sqlx::query(&set("password_hash"))
                .bind(hash)
                .bind(member_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        if let Some(disabled) = change.disabled {
            sqlx::query(&set("disabled"))
                .bind(disabled)
                .bind(member_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        if change.disabled == Some(true) || change.password_hash.is_some() {
            revoke_all(&mut tx, member_id, None).await?;
        }
        self.commit_announced(tx, &[Invalidation::Callers, Invalidation::Readers])
            .await
    }

    async fn delete_member(&self, member_id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        keep_an_admin(&mut tx, member_id, &MemberUpdate::default(), true).await?;
        revoke_all(&mut tx, member_id, None).await?;
        for sql in [
            "DELETE FROM space_members WHERE member_id = $1",
            "DELETE FROM channel_members WHERE member_id = $1",
            "DELETE FROM project_members WHERE member_id = $1",
        ] {
            sqlx::query(sql)
                .bind(member_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query(
            "UPDATE members SET disabled = TRUE, deleted_utc = $1, username = $2, \
             password_hash = '' WHERE id = $3",
        )
        .bind(now_ms())
        .bind(tombstone_username(member_id))
        .bind(member_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        self.commit_announced(tx, &[Invalidation::Callers, Invalidation::Readers])
            .await
    }

    async fn change_own_password(
        &self,
        member_id: i64,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE members SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        revoke_all(&mut tx, member_id, keep_session).await?;
        self.commit_announced(tx, &[Invalidation::Callers, Invalidation::Readers])
            .await
    }
}

/// Refuses a change that would leave no active administrator, inside the change's transaction. The
/// active administrators' rows are locked first, in id order, then the member's: two concurrent
/// demotions of the last two administrators cannot both pass, and lock in the same order.
async fn keep_an_admin(
    tx: &mut super::Tx,
    member_id: i64,
    change: &MemberUpdate,
    deleting: bool,
) -> StoreResult<()> {
    let admins: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM members WHERE role = 'admin' AND NOT disabled AND NOT is_app \
         AND deleted_utc IS NULL ORDER BY id FOR UPDATE",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM members WHERE id = $1 AND NOT is_app AND deleted_utc IS NULL FOR UPDATE",
    )
    .bind(member_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    if found.is_none() {
        return Err(StoreError::NotFound("member"));
    }
    let loses = deleting || change.disabled == Some(true) || change.role == Some(Role::Member);
    if loses && admins == [member_id] {
        return Err(last_admin());
    }
    Ok(())
}

#[async_trait]
impl AttemptStore for PgStore {
    async fn failures(&self, key: &str, now: i64) -> StoreResult<Option<(i64, i64)>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, window_end FROM auth_attempts WHERE key = $1 AND window_end > $2",
        )
        .bind(key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row)
    }

    async fn record_failure(&self, key: &str, now: i64, window_ms: i64) -> StoreResult<(i64, i64)> {
        // One statement: the insert, or the count in the open window, or a new window; the row
        // lock of ON CONFLICT serializes concurrent failures of one key across nodes.
        sqlx::query_as(
            "INSERT INTO auth_attempts AS a (key, window_start, window_end, failures) \
             VALUES ($1, $2, $3, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN a.window_end > $2 THEN a.failures + 1 ELSE 1 END, \
               window_start = CASE WHEN a.window_end > $2 THEN a.window_start ELSE $2 END, \
               window_end = CASE WHEN a.window_end > $2 THEN a.window_end ELSE $3 END \
             RETURNING failures, window_end",
        )
        .bind(key)
        .bind(now)
        .bind(now + window_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn forgive_failure(&self, key: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE auth_attempts SET failures = failures - 1 \
             WHERE key = $1 AND window_end > $2 AND failures > 0",
        )
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn prune_attempts(&self, now: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM auth_attempts WHERE window_end <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
