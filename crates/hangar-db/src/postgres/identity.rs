//! Members, sessions and personal tokens.

use super::{backend, map_err, PgStore};
use crate::rows::{self, StoreRow, MEMBER_COLUMNS, PERSONAL_TOKEN_COLUMNS};
use async_trait::async_trait;
use hangar_core::ids::random_id;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::store::{IdentityStore, MemberControlStore, StoreResult};

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
            "SELECT {MEMBER_COLUMNS} FROM members m WHERE m.username = $1 AND NOT m.is_app"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(rows::member))
    }

    async fn set_password(&self, member_id: i64, password_hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE members SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(member_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_members(&self) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members m WHERE NOT m.is_app ORDER BY m.username"
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
            "INSERT INTO sessions (token_hash, member_id, expires_utc) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(member_id)
        .bind(expires_utc)
        .execute(&self.pool)
        .await
        .map_err(map_err("session"))?;
        Ok(())
    }

    async fn session_member(&self, token_hash: &str, now: i64) -> StoreResult<Option<Member>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM sessions s JOIN members m ON m.id = s.member_id \
             WHERE s.token_hash = $1 AND s.expires_utc > $2 AND NOT m.disabled"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(rows::member))
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
            "INSERT INTO personal_tokens (id, member_id, name, token_hash, scope, expires_utc, created_utc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id)
        .bind(token.member_id)
        .bind(&token.name)
        .bind(token_hash)
        .bind(token.scope.to_text())
        .bind(token.expires_utc)
        .bind(token.created_utc)
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
        Ok(row.map(|r| (rows::member_at(&r, 0), rows::personal_token_at(&r, 5))))
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
        sqlx::query("UPDATE personal_tokens SET last_used_utc = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_token(&self, member_id: i64, token_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM personal_tokens WHERE id = $1 AND member_id = $2")
            .bind(token_id)
            .bind(member_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}

/// Ends every session of the member and revokes every token it holds or approved.
async fn revoke_all(tx: &mut super::Tx, member_id: i64) -> StoreResult<()> {
    for sql in [
        "DELETE FROM sessions WHERE member_id = $1",
        "DELETE FROM personal_tokens WHERE member_id = $1",
        "DELETE FROM app_tokens WHERE member_id = $1",
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
        revoke_all(&mut tx, member_id).await?;
        tx.commit().await.map_err(backend)
    }

    async fn disable_member(&self, member_id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE members SET disabled = TRUE WHERE id = $1")
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        revoke_all(&mut tx, member_id).await?;
        tx.commit().await.map_err(backend)
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
}
