//! Webhooks from the outbox, as jobs. Each outbox event has a `dispatch-event` job, queued in the
//! transaction of the change it describes: the job records a delivery per matching subscription (the
//! application must hold the event's reading right in the event's context) and unfurl queue items for
//! links in new messages, in one transaction that also marks the event dispatched. Delivery and item
//! ids are derived from the event, so a dispatch that runs twice (its node died before the job was
//! completed) records each once. Each delivery has a `deliver` job (`deliver.rs`).
//!
//! No cursor: an event is dispatched because its job exists, so events whose transactions commit out
//! of order are never skipped, and any node may dispatch any event.

mod deliver;

pub use deliver::signature_headers;

use crate::{Job, JobContext, JobError};
use hangar_core::app_model::{
    AppLevelAuth, Declaration, ItemKind, SecretName, Subscription, UnfurlQueueItem, Verdict,
    Webhook,
};
use hangar_core::app_ops::{app_granted, queue_key};
use hangar_core::apps::{self as rules, Context, RightCode};
use hangar_core::jobs::DispatchEvent;
use hangar_core::store::{AppItem, AppRecord, Delivery, EventRecord};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Most subscriptions, unfurl domains and patterns read per dispatch.
const MAX_LISTED: i64 = 100_000;

#[async_trait::async_trait]
impl Job for DispatchEvent {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        // An event pruned meanwhile (or never committed) has nothing left to dispatch.
        let Some(event) = ctx.apps.event(&self.event_id).await? else {
            return Ok(());
        };
        let deliveries = event_deliveries(ctx, &event).await?;
        let items = if event.event_type == "ChatMessage.Created" {
            unfurl_items(ctx, &event).await?
        } else {
            vec![]
        };
        ctx.apps
            .record_dispatch(&event.id, &deliveries, &items)
            .await?;
        if !deliveries.is_empty() {
            tracing::debug!(count = deliveries.len(), event = %event.id, "webhook deliveries queued");
        }
        Ok(())
    }
}

/// The permission context an event belongs to.
async fn event_context(ctx: &JobContext, e: &EventRecord) -> Result<Option<Context>, JobError> {
    let Some(family) = e.event_type.split('.').next() else {
        return Ok(None);
    };
    Ok(match family {
        "StorageFile" => e.space_id.as_deref().map(Context::space),
        "ChatMessage" => e.payload["channelId"].as_i64().map(Context::channel),
        "Issue" => {
            let project = match e.payload["projectId"].as_i64() {
                Some(id) => ctx.projects.project_by_id(id).await?,
                None => match e.payload["issueId"].as_i64() {
                    Some(issue) => match ctx.projects.issue_by_id(issue).await? {
                        Some(issue) => ctx.projects.project_by_id(issue.project_id).await?,
                        None => None,
                    },
                    None => None,
                },
            };
            project.map(|p| Context::project(&p.key))
        }
        _ => Some(Context::global()),
    })
}

/// A delivery per webhook whose subscription wants the event and whose application may see it.
async fn event_deliveries(
    ctx: &JobContext,
    event: &EventRecord,
) -> Result<Vec<Delivery>, JobError> {
    let subs = ctx
        .apps
        .items(None, ItemKind::Subscription, None, None, MAX_LISTED)
        .await?;
    let context = event_context(ctx, event).await?;
    let mut apps: HashMap<i64, Option<AppRecord>> = HashMap::new();
    let mut webhooks: HashMap<(i64, String), Option<(String, Webhook)>> = HashMap::new();
    let mut deliveries = Vec::new();
    for sub in &subs {
        let wanted = sub
            .get::<Subscription>()?
            .wants(&event.event_type, context.as_ref().map(|c| c.text.as_str()));
        if !wanted {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = apps.entry(sub.app_id) {
            e.insert(ctx.apps.app(sub.app_id).await?);
        }
        let Some(app) = apps[&sub.app_id].as_ref().filter(|a| !a.archived) else {
            continue;
        };
        let key = (sub.app_id, sub.scope.clone());
        if let std::collections::hash_map::Entry::Vacant(e) = webhooks.entry(key.clone()) {
            let item = ctx
                .apps
                .item(sub.app_id, ItemKind::Webhook, "", &sub.scope)
                .await?;
            e.insert(match item {
                Some(i) => Some((i.key.clone(), i.get::<Webhook>()?)),
                None => None,
            });
        }
        let Some((webhook_id, webhook)) = webhooks[&key].as_ref() else {
            continue;
        };
        if !webhook.live() {
            continue;
        }
        // The application must be allowed to see what the event is about.
        let Some(right) = rules::event_right(&event.event_type) else {
            continue;
        };
        let place = context.clone().unwrap_or_else(Context::global);
        if !app_granted(ctx.apps.as_ref(), app.id, right, &place).await? {
            continue;
        }
        deliveries.push(event_delivery(ctx, app, webhook_id, webhook, event));
    }
    // One delivery per (event, webhook) even if several subscriptions of the webhook match.
    deliveries.sort_by(|a: &Delivery, b| a.id.cmp(&b.id));
    deliveries.dedup_by(|a, b| a.id == b.id);
    Ok(deliveries)
}

/// The WebhookRequestPayload for an event, shaped by the webhook's payloadFields or payloadTemplate.
fn event_delivery(
    ctx: &JobContext,
    app: &AppRecord,
    webhook_id: &str,
    webhook: &Webhook,
    event: &EventRecord,
) -> Delivery {
    let id = format!(
        "msg_{}",
        &hex::encode(Sha256::digest(format!("{}/{}", event.id, webhook_id)))[..32]
    );
    let mut payload = json!({
        "className": event.event_type,
        "eventId": event.id,
        "eventType": event.event_type,
        "createdUtc": event.created_utc,
        "spaceId": event.space_id,
        "actorId": event.actor_id.map(|a| a.to_string()),
    });
    if let (Some(p), Some(extra)) = (payload.as_object_mut(), event.payload.as_object()) {
        for (k, v) in extra {
            p.insert(k.clone(), v.clone());
        }
    }
    if let Some(fields) = webhook.payload_fields.as_deref() {
        let keep: Vec<&str> = fields.split(',').map(str::trim).collect();
        if let Some(p) = payload.as_object_mut() {
            p.retain(|k, _| k == "className" || keep.contains(&k.as_str()));
        }
    }
    // The token is sent when the application asked for it, either way the seed offers.
    let settings = &app.doc.settings;
    let verification = if settings.has_verification_token
        || settings.app_level_auth == AppLevelAuth::VerificationToken
    {
        app.doc
            .secrets
            .open(&ctx.secrets, SecretName::VerificationToken)
            .ok()
            .flatten()
    } else {
        None
    };
    let envelope = json!({
        "className": "WebhookRequestPayload",
        "deliveryId": id,
        "webhookId": webhook_id,
        "clientId": app.client_id,
        "serverUrl": ctx.public_url,
        "verificationToken": verification,
        "payload": payload,
    });
    let mut d = Delivery::pending(
        id,
        app.id,
        Some(webhook_id.to_string()),
        "event",
        String::new(),
    );
    match webhook.payload_template.as_deref() {
        // Bodies are sealed at rest: they can carry the verification token or the client secret.
        None => d.body = ctx.secrets.seal(&envelope.to_string()),
        Some(t) => match rules::render_template(t, &envelope["payload"]) {
            Ok(body) => d.body = ctx.secrets.seal(&body),
            Err(e) => {
                // Recorded as failed so the problem is visible; never sent half-rendered.
                d.status = "failed".into();
                d.last_error = Some(format!("payload template: {e}"));
            }
        },
    }
    d
}

/// Unfurl queue items for links in a new message that match an approved domain of an application.
async fn unfurl_items(ctx: &JobContext, event: &EventRecord) -> Result<Vec<AppItem>, JobError> {
    let text = event.payload["text"].as_str().unwrap_or("");
    let links = rules::links_in(text);
    // The approved declarations, as (application, domain or prefix).
    let approved = |items: Vec<AppItem>| -> Result<Vec<(i64, String)>, JobError> {
        let mut out = Vec::new();
        for i in items {
            if i.get::<Declaration>()?.status == Verdict::Approved {
                out.push((i.app_id, i.key));
            }
        }
        Ok(out)
    };
    let domains = approved(
        ctx.apps
            .items(None, ItemKind::UnfurlDomain, None, None, MAX_LISTED)
            .await?,
    )?;
    let patterns = approved(
        ctx.apps
            .items(None, ItemKind::UnfurlPattern, None, None, MAX_LISTED)
            .await?,
    )?;
    // Targets: links matched by domain, and words matched by an external id prefix (`JIRA-` in
    // `JIRA-123`), each with the apps whose approved entry matches.
    let mut targets: Vec<(String, Vec<i64>)> = Vec::new();
    for (link, host) in &links {
        let apps = domains
            .iter()
            .filter(|(_, domain)| rules::host_matches(host, domain))
            .map(|(app, _)| *app)
            .collect();
        targets.push((link.clone(), apps));
    }
    for word in text.split_whitespace().take(200) {
        let word = word.trim_end_matches(['.', ',', ';', '!', ':', ')', '?']);
        let apps: Vec<i64> = patterns
            .iter()
            .filter(|(_, prefix)| word.len() > prefix.len() && word.starts_with(prefix.as_str()))
            .map(|(app, _)| *app)
            .collect();
        if !apps.is_empty() && targets.len() < 20 {
            targets.push((word.to_string(), apps));
        }
    }
    let mut out = Vec::new();
    for (i, (target, apps)) in targets.iter().enumerate() {
        let mut seen = Vec::new();
        for &app_id in apps {
            if seen.contains(&app_id) {
                continue;
            }
            seen.push(app_id);
            let provides = RightCode::ProvideUnfurls;
            if !app_granted(ctx.apps.as_ref(), app_id, provides, &Context::global()).await? {
                continue;
            }
            let etag = event.seq * 32 + i as i64;
            let queued = UnfurlQueueItem {
                etag,
                target: target.clone(),
                message_id: event.payload["messageId"].as_i64(),
                channel_id: event.payload["channelId"].as_i64(),
                author_id: event.actor_id.map(|a| a.to_string()),
                created_utc: event.created_utc,
            };
            out.push(AppItem::new(
                app_id,
                ItemKind::UnfurlQueue,
                "",
                queue_key(etag),
                &queued,
            ));
        }
    }
    Ok(out)
}
