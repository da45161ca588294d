//! Projects, their members, and issues with attachment links.

use super::attachments::{delete_owner, insert_links, linked_attachments};
use super::blobs::record_event;
use super::{backend, map_err, SqliteStore};
use crate::rows::{self, StoreRow, ISSUE_COLUMNS};
use crate::rules::LinkTable;
use async_trait::async_trait;
use hangar_core::ids::random_id;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::read_cache::Invalidation;
use hangar_core::store::{ProjectStore, StoreError, StoreResult};

impl SqliteStore {
    async fn project_where(
        &self,
        filter: &str,
        key: Option<&str>,
        id: i64,
    ) -> StoreResult<Option<Project>> {
        let sql = format!("SELECT id, key, name, created_utc FROM projects WHERE {filter}");
        let query = match key {
            Some(k) => sqlx::query(&sql).bind(k.to_string()),
            None => sqlx::query(&sql).bind(id),
        };
        let Some(r) = query.fetch_optional(&self.pool).await.map_err(backend)? else {
            return Ok(None);
        };
        let id: i64 = r.int("id");
        let members = sqlx::query_scalar(
            "SELECT m.username FROM project_members pm JOIN members m ON m.id = pm.member_id \
             WHERE pm.project_id = ? ORDER BY m.username",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(Some(Project {
            id,
            key: r.text("key"),
            name: r.text("name"),
            created_utc: r.int("created_utc"),
            members,
        }))
    }

    async fn issues_where(&self, filter: &str, binds: &[i64]) -> StoreResult<Vec<Issue>> {
        let sql = format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id WHERE {filter}"
        );
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
        let mut issues: Vec<Issue> = rows.iter().map(rows::issue).collect();
        let ids: Vec<i64> = issues.iter().map(|i| i.id).collect();
        let mut links = linked_attachments(&self.pool, LinkTable::Issue, &ids).await?;
        for issue in &mut issues {
            issue.attachments = links.remove(&issue.id).unwrap_or_default();
        }
        Ok(issues)
    }
}

#[async_trait]
impl ProjectStore for SqliteStore {
    async fn create_project(
        &self,
        key: &str,
        name: &str,
        member_ids: &[i64],
    ) -> StoreResult<Project> {
        let id = random_id();
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO projects (id, key, name, created_utc) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(key)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err("project"))?;
        for m in member_ids {
            sqlx::query(
                "INSERT OR IGNORE INTO project_members (project_id, member_id) VALUES (?, ?)",
            )
            .bind(id)
            .bind(m)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        self.project_by_id(id)
            .await?
            .ok_or(StoreError::NotFound("project"))
    }

    async fn project_by_key(&self, key: &str) -> StoreResult<Option<Project>> {
        self.project_where("key = ?", Some(key), 0).await
    }

    async fn project_by_id(&self, id: i64) -> StoreResult<Option<Project>> {
        self.project_where("id = ?", None, id).await
    }

    async fn list_projects(&self, member_id: Option<i64>) -> StoreResult<Vec<Project>> {
        let ids: Vec<i64> =
            match member_id {
                None => {
                    sqlx::query_scalar("SELECT id FROM projects ORDER BY created_utc, id")
                        .fetch_all(&self.pool)
                        .await
                }
                Some(m) => sqlx::query_scalar(
                    "SELECT p.id FROM projects p JOIN project_members pm ON pm.project_id = p.id \
                     WHERE pm.member_id = ? ORDER BY p.created_utc, p.id",
                )
                .bind(m)
                .fetch_all(&self.pool)
                .await,
            }
            .map_err(backend)?;
        let mut projects = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = self.project_by_id(id).await? {
                projects.push(p);
            }
        }
        Ok(projects)
    }

    async fn is_project_member(&self, project_id: i64, member_id: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM project_members WHERE project_id = ? AND member_id = ?",
        )
        .bind(project_id)
        .bind(member_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn create_issue(
        &self,
        project_id: i64,
        author_id: i64,
        title: &str,
        status: &str,
        links: &[AttachmentLink],
    ) -> StoreResult<Issue> {
        let id = random_id();
        let now = now_ms();
        let mut tx = self.write().await?;
        let number: i64 = sqlx::query_scalar(
            "UPDATE projects SET next_number = next_number + 1 WHERE id = ? RETURNING next_number - 1",
        )
        .bind(project_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO issues (id, project_id, number, title, status, author_id, created_utc, updated_utc) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(project_id)
        .bind(number)
        .bind(title)
        .bind(status)
        .bind(author_id)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_links(&mut tx, LinkTable::Issue, id, None, links).await?;
        let payload = serde_json::json!({
            "issueId": id, "projectId": project_id, "number": number, "title": title, "status": status,
        });
        record_event(&mut tx, "Issue.Created", None, None, payload).await?;
        self.commit_queued(tx).await?;
        self.issue_by_id(id)
            .await?
            .ok_or(StoreError::NotFound("issue"))
    }

    async fn issue_by_number(&self, project_id: i64, number: i64) -> StoreResult<Option<Issue>> {
        Ok(self
            .issues_where("i.project_id = ? AND i.number = ?", &[project_id, number])
            .await?
            .pop())
    }

    async fn issue_by_id(&self, id: i64) -> StoreResult<Option<Issue>> {
        Ok(self.issues_where("i.id = ?", &[id]).await?.pop())
    }

    async fn list_issues(
        &self,
        project_id: i64,
        skip: i64,
        top: i64,
    ) -> StoreResult<(Vec<Issue>, i64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM issues WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let issues = self
            .issues_where(
                "i.project_id = ? ORDER BY i.number LIMIT ? OFFSET ?",
                &[project_id, top, skip],
            )
            .await?;
        Ok((issues, total))
    }

    async fn add_issue_attachments(
        &self,
        issue_id: i64,
        links: &[AttachmentLink],
    ) -> StoreResult<Issue> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE issues SET updated_utc = ? WHERE id = ?")
            .bind(now_ms())
            .bind(issue_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_links(&mut tx, LinkTable::Issue, issue_id, None, links).await?;
        let ids: Vec<i64> = links.iter().map(|l| l.attachment_id).collect();
        let payload = serde_json::json!({ "issueId": issue_id, "addedAttachmentIds": ids });
        record_event(&mut tx, "Issue.Updated", None, None, payload).await?;
        self.commit_queued(tx).await?;
        self.issue_by_id(issue_id)
            .await?
            .ok_or(StoreError::NotFound("issue"))
    }

    async fn delete_issue(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (project_id, number): (i64, i64) =
            sqlx::query_as("SELECT project_id, number FROM issues WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .ok_or(StoreError::NotFound("issue"))?;
        delete_owner(&mut tx, LinkTable::Issue, id).await?;
        let payload =
            serde_json::json!({ "issueId": id, "projectId": project_id, "number": number });
        record_event(&mut tx, "Issue.Deleted", None, None, payload).await?;
        self.commit_queued(tx).await?;
        self.invalidate(&[Invalidation::Readers]);
        Ok(())
    }
}
