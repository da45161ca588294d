//! `hangar share ID|S:PATH [--expires 7d] [--password]`: makes a share link (docs/api.md §13a) and
//! prints its URL, the only time the server shows it.

use super::{json_or_error, path_id, read_password, transport, Session, Target};
use anyhow::{anyhow, Context};
use serde_json::json;

pub async fn run(target: &str, expires: Option<String>, password: bool) -> anyhow::Result<()> {
    let target = Target::parse(target)?;
    let mut body = match &target {
        Target::Attachment(id) => json!({"attachmentId": id}),
        Target::Storage { space, path } => json!({"spaceId": space, "pathId": path_id(path)}),
    };
    if let Some(expires) = expires {
        let after = crate::config::parse_duration(&expires)
            .with_context(|| format!("--expires `{expires}`"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the clock is before 1970")?;
        body["expiresAt"] = json!((now + after).as_millis() as u64);
    }
    if password {
        body["password"] = json!(read_password("Password for the link", true)?);
    }
    let session = Session::load()?;
    let r = session
        .post("/api/v1/share-links")
        .json(&body)
        .send()
        .await
        .map_err(transport)?;
    let link = json_or_error(r).await.context("cannot make the link")?;
    let url = link["url"]
        .as_str()
        .ok_or_else(|| anyhow!("the server's answer has no url"))?;
    println!("{url}");
    Ok(())
}
