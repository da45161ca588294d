//! `hangar ls S[:DIR]`: one line per entry of a storage directory, in the server's order (byte
//! order of names): size, modification time (UTC) and name; directories end with `/`.

use super::{path_id, segment, Session};
use anyhow::{anyhow, bail};

pub async fn run(target: &str) -> anyhow::Result<()> {
    let (space, dir) = match target.split_once(':') {
        Some((space, dir)) => (space, dir.trim_matches('/')),
        None => (target, ""),
    };
    if space.is_empty() {
        bail!("`{target}`: expected SPACE or SPACE:DIR");
    }
    let session = Session::load()?;
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1000".to_string())];
        if !dir.is_empty() {
            query.push(("dir", path_id(dir)));
        }
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let r = session
            .get(&format!("/api/v1/space/{}/storage", segment(space)))
            .query(&query)
            .send()
            .await
            .map_err(super::transport)?;
        let page = super::json_or_error(r).await?;
        let entries = page["data"]
            .as_array()
            .ok_or_else(|| anyhow!("the server's answer has no entries"))?;
        for e in entries {
            println!("{}", line(e));
        }
        match page["next"].as_str() {
            Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(())
}

fn line(e: &serde_json::Value) -> String {
    let name = e["name"].as_str().unwrap_or("?");
    let modified = e["lastModifiedUtc"]
        .as_i64()
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|| "-".repeat(16));
    if e["kind"].as_str() == Some("dir") {
        format!("{:>12}  {modified}  {name}/", "-")
    } else {
        format!(
            "{:>12}  {modified}  {name}",
            e["size"].as_u64().unwrap_or(0)
        )
    }
}
