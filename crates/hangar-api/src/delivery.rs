//! Webhook delivery from the database outbox.
//!
//! The dispatcher reads outbox events after its cursor and, in one transaction with moving the cursor,
//! records a delivery per matching subscription (and unfurl queue items for links in messages): each
//! event is dispatched once, even across restarts. The sender claims due deliveries with a lease,
//! POSTs them through the SSRF-safe client (no redirects, time-outs, capped answer), and records the
//! outcome; failures are retried with exponential backoff and jitter. A crash between sending and
//! recording means the lease runs out and the delivery is sent again: at-least-once, with a stable
//! `webhook-id` for receivers to deduplicate on. Requests never wait for any of this.

use crate::applications::{app_granted, app_secret, archive, open_secret, queue_key};
use crate::secrets::{base64, hmac_sha256};
use crate::webhooks::custom_headers;
use crate::AppState;
use hangar_core::apps::{self as rules, TemplateError};
use hangar_core::now_ms;
use hangar_core::store::{AppItem, AppRecord, Delivery, EventRecord};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// How long a rotated-out signing key keeps signing beside the new one.
pub const KEY_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Attempts before a delivery is given up: with the backoff below, about five hours of trying.
const MAX_ATTEMPTS: i64 = 16;
/// First retry delay; each further one doubles, up to an hour.
const BACKOFF_BASE_MS: i64 = 1000;
const BACKOFF_MAX_MS: i64 = 3600 * 1000;
/// A delivery being sent is leased for this long; after a crash it is retried when the lease ends.
const LEASE_MS: i64 = 60_000;
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
const BATCH: i64 = 100;
const SENDERS: usize = 16;
/// How often the dispatcher looks for new events (one indexed query; events are written by every
/// concern's transaction, so polling is simpler than waking it from each).
const DISPATCH_POLL: Duration = Duration::from_millis(50);
/// Wakes the sender when deliveries were queued.
static SENDER: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells the sender that a delivery is due now.
pub fn wake_sender() {
    SENDER.notify_one();
}

/// Starts the dispatcher and the sender; they run until the process ends.
pub fn spawn(state: AppState) {
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            match dispatch_once(&s).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!("webhook dispatch failed: {e:?}"),
            }
            let _ = tokio::time::timeout(DISPATCH_POLL, s.deliveries.notified()).await;
        }
    });
    tokio::spawn(async move {
        // Up to SENDERS deliveries in flight; a slow endpoint holds one slot, not the others.
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let free = SENDERS - tasks.len();
            let mut claimed = 0;
            if free > 0 {
                match claim(&state, free as i64).await {
                    Ok(due) => {
                        claimed = due.len();
                        for d in due {
                            let state = state.clone();
                            tasks.spawn(async move {
                                let id = d.id.clone();
                                if let Err(e) = send_one(&state, d).await {
                                    tracing::warn!(delivery = %id, "cannot record a delivery: {e:?}");
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!("webhook sending failed: {e:?}"),
                }
            }
            if claimed > 0 && tasks.len() < SENDERS {
                continue;
            }
            tokio::select! {
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = SENDER.notified() => {}
            }
        }
    });
}

/// The permission context an event belongs to.
async fn event_context(state: &AppState, e: &EventRecord) -> Option<String> {
    match e.event_type.split('.').next()? {
        "StorageFile" => Some(format!("space:id:{}", e.space_id.as_deref()?)),
        "ChatMessage" => Some(format!("channel:id:{}", e.payload["channelId"].as_i64()?)),
        "Issue" => {
            let project = e.payload["projectId"].as_i64();
            let project = match project {
                Some(id) => state.projects.project_by_id(id).await.ok()??,
                None => {
                    let issue = e.payload["issueId"].as_i64()?;
                    let issue = state.projects.issue_by_id(issue).await.ok()??;
                    state
                        .projects
                        .project_by_id(issue.project_id)
                        .await
                        .ok()??
                }
            };
            Some(format!("project:key:{}", project.key))
        }
        _ => Some("global".into()),
    }
}

/// Handles one batch of outbox events; true when there may be more.
async fn dispatch_once(state: &AppState) -> anyhow::Result<bool> {
    let cursor = state.apps.dispatch_cursor().await?;
    let events = state.apps.events_after(cursor, BATCH).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(false);
    };
    let subs = state
        .apps
        .items(None, "subscription", None, None, 100_000)
        .await?;
    let mut apps: HashMap<i64, Option<AppRecord>> = HashMap::new();
    let mut webhooks: HashMap<(i64, String), Option<AppItem>> = HashMap::new();
    let mut deliveries = Vec::new();
    let mut items = Vec::new();
    for event in &events {
        let context = event_context(state, event).await;
        for sub in &subs {
            let v = &sub.value;
            let wanted = v["enabled"] != json!(false)
                && v["eventTypes"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == event.event_type.as_str()));
            if !wanted {
                continue;
            }
            if let Some(only) = v["contextIdentifier"].as_str() {
                if only != "global" && context.as_deref() != Some(only) {
                    continue;
                }
            }
            if let std::collections::hash_map::Entry::Vacant(e) = apps.entry(sub.app_id) {
                e.insert(state.apps.app(sub.app_id).await?);
            }
            let Some(app) = apps[&sub.app_id].as_ref().filter(|a| !a.archived) else {
                continue;
            };
            let key = (sub.app_id, sub.scope.clone());
            if let std::collections::hash_map::Entry::Vacant(e) = webhooks.entry(key.clone()) {
                e.insert(
                    state
                        .apps
                        .item(sub.app_id, "webhook", "", &sub.scope)
                        .await?,
                );
            }
            let Some(webhook) = webhooks[&key].as_ref() else {
                continue;
            };
            if webhook.value["enabled"] == json!(false) || webhook.value["archived"] == json!(true)
            {
                continue;
            }
            // The application must be allowed to see what the event is about.
            let Some(right) = rules::event_right(&event.event_type) else {
                continue;
            };
            let ctx = context.clone().unwrap_or_else(|| "global".into());
            if !app_granted(state, app.id, right, &ctx)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
            {
                continue;
            }
            deliveries.push(event_delivery(state, app, webhook, event));
        }
        if event.event_type == "ChatMessage.Created" {
            items.extend(unfurl_items(state, event).await?);
        }
    }
    // One delivery per (event, webhook) even if several subscriptions of the webhook match.
    deliveries.sort_by(|a: &Delivery, b| a.id.cmp(&b.id));
    deliveries.dedup_by(|a, b| a.id == b.id);
    state.apps.dispatch(last, &deliveries, &items).await?;
    if !deliveries.is_empty() {
        wake_sender();
    }
    if !deliveries.is_empty() {
        tracing::debug!(count = deliveries.len(), "webhook deliveries queued");
    }
    Ok(events.len() as i64 == BATCH)
}

/// The WebhookRequestPayload for an event, shaped by the webhook's payloadFields or payloadTemplate.
fn event_delivery(
    state: &AppState,
    app: &AppRecord,
    webhook: &AppItem,
    event: &EventRecord,
) -> Delivery {
    let id = format!(
        "msg_{}",
        &hex::encode(Sha256::digest(format!("{}/{}", event.id, webhook.key)))[..32]
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
    if let Some(fields) = webhook.value["payloadFields"].as_str() {
        let keep: Vec<&str> = fields.split(',').map(str::trim).collect();
        if let Some(p) = payload.as_object_mut() {
            p.retain(|k, _| k == "className" || keep.contains(&k.as_str()));
        }
    }
    let verification = if app.doc["hasVerificationToken"] == json!(true) {
        app_secret(state, app, "verificationToken").ok().flatten()
    } else {
        None
    };
    let envelope = json!({
        "className": "WebhookRequestPayload",
        "deliveryId": id,
        "webhookId": webhook.key,
        "clientId": app.client_id,
        "serverUrl": state.settings.public_url,
        "verificationToken": verification,
        "payload": payload,
    });
    let now = now_ms();
    let mut d = Delivery {
        id,
        app_id: app.id,
        webhook_id: Some(webhook.key.clone()),
        kind: "event".into(),
        body: String::new(),
        status: "pending".into(),
        attempts: 0,
        next_attempt_utc: now,
        last_status: None,
        last_error: None,
        created_utc: now,
    };
    match webhook.value["payloadTemplate"].as_str() {
        // Bodies are sealed at rest: they can carry the verification token or the client secret.
        None => d.body = state.secrets.seal(&envelope.to_string()),
        Some(t) => match rules::render_template(t, &envelope["payload"]) {
            Ok(body) => d.body = state.secrets.seal(&body),
            Err(e @ TemplateError::TooLarge) | Err(e) => {
                // Recorded as failed so the problem is visible; never sent half-rendered.
                d.status = "failed".into();
                d.last_error = Some(format!("payload template: {e}"));
            }
        },
    }
    d
}

/// Unfurl queue items for links in a new message that match an approved domain of an application.
async fn unfurl_items(state: &AppState, event: &EventRecord) -> anyhow::Result<Vec<AppItem>> {
    let text = event.payload["text"].as_str().unwrap_or("");
    let links = rules::links_in(text);
    let domains = state
        .apps
        .items(None, "unfurl-domain", None, None, 100_000)
        .await?;
    let patterns = state
        .apps
        .items(None, "unfurl-pattern", None, None, 100_000)
        .await?;
    // Targets: links matched by domain, and words matched by an external id prefix (`JIRA-` in
    // `JIRA-123`), each with the apps whose approved entry matches.
    let mut targets: Vec<(String, Vec<i64>)> = Vec::new();
    for (link, host) in &links {
        let apps = domains
            .iter()
            .filter(|d| d.value["status"] == json!("APPROVED") && rules::host_matches(host, &d.key))
            .map(|d| d.app_id)
            .collect();
        targets.push((link.clone(), apps));
    }
    for word in text.split_whitespace().take(200) {
        let word = word.trim_end_matches(['.', ',', ';', '!', ':', ')', '?']);
        let apps: Vec<i64> = patterns
            .iter()
            .filter(|p| {
                p.value["status"] == json!("APPROVED")
                    && word.len() > p.key.len()
                    && word.starts_with(p.key.as_str())
            })
            .map(|p| p.app_id)
            .collect();
        if !apps.is_empty() && targets.len() < 20 {
            targets.push((word.to_string(), apps));
        }
    }
    if targets.is_empty() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for (i, (target, apps)) in targets.iter().enumerate() {
        let mut seen = Vec::new();
        for &app_id in apps {
            if seen.contains(&app_id) {
                continue;
            }
            seen.push(app_id);
            let allowed = app_granted(state, app_id, crate::applications::UNFURLS, "global")
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if !allowed {
                continue;
            }
            let etag = event.seq * 32 + i as i64;
            out.push(AppItem {
                app_id,
                kind: "unfurl-queue".into(),
                scope: String::new(),
                key: queue_key(etag),
                value: json!({
                    "etag": etag,
                    "target": target,
                    "messageId": event.payload["messageId"],
                    "channelId": event.payload["channelId"],
                    "authorId": event.actor_id.map(|a| a.to_string()),
                    "createdUtc": event.created_utc,
                }),
                created_utc: now_ms(),
            });
        }
    }
    Ok(out)
}

/// Claims up to `n` due deliveries.
async fn claim(state: &AppState, n: i64) -> anyhow::Result<Vec<Delivery>> {
    let now = now_ms();
    Ok(state.apps.claim_deliveries(now, now + LEASE_MS, n).await?)
}

/// Where and how one delivery goes.
struct Route {
    url: String,
    verify_tls: bool,
    keys: Vec<String>,
    auth: Option<String>,
    headers: Vec<(String, String)>,
    accepted: Vec<u16>,
    retries: bool,
}

fn signing_keys(state: &AppState, holder: &Value, now: i64) -> anyhow::Result<Vec<String>> {
    let open = |name: &str| open_secret(state, holder, name).map_err(|e| anyhow::anyhow!("{e:?}"));
    let mut keys: Vec<String> = open("signingKey")?.into_iter().collect();
    if holder["previousSigningKeyUntil"]
        .as_i64()
        .is_some_and(|t| t > now)
    {
        keys.extend(open("previousSigningKey")?);
    }
    Ok(keys)
}

fn route(state: &AppState, app: &AppRecord, webhook: Option<&AppItem>) -> anyhow::Result<Route> {
    let now = now_ms();
    let app_url = app.doc["endpointUri"].as_str().map(str::to_string);
    let app_tls = app.doc["endpointSslVerification"].as_bool().unwrap_or(true);
    match webhook {
        Some(w) => {
            let v = &w.value;
            let (url, verify_tls) = match v["endpoint"]["url"].as_str() {
                Some(u) => (
                    u.to_string(),
                    v["endpoint"]["sslVerification"].as_bool().unwrap_or(true),
                ),
                None => (
                    app_url.ok_or_else(|| anyhow::anyhow!("no endpoint"))?,
                    app_tls,
                ),
            };
            let open =
                |name: &str| open_secret(state, v, name).map_err(|e| anyhow::anyhow!("{e:?}"));
            let auth = match v["authType"].as_str() {
                Some("basic") => Some(format!(
                    "Basic {}",
                    base64(
                        format!(
                            "{}:{}",
                            v["authUsername"].as_str().unwrap_or(""),
                            open("password")?.unwrap_or_default()
                        )
                        .as_bytes()
                    )
                )),
                Some("bearer") => open("bearerToken")?.map(|t| format!("Bearer {t}")),
                _ => None,
            };
            Ok(Route {
                url,
                verify_tls,
                keys: signing_keys(state, v, now)?,
                auth,
                headers: custom_headers(state, v).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                accepted: v["acceptedHttpResponseCodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_u64().map(|c| c as u16))
                    .collect(),
                retries: v["doRetries"].as_bool().unwrap_or(true),
            })
        }
        None => {
            let open =
                |name: &str| app_secret(state, app, name).map_err(|e| anyhow::anyhow!("{e:?}"));
            let auth = if let Some(t) = open("bearerAuthToken")? {
                Some(format!("Bearer {t}"))
            } else if let (Some(u), Some(p)) = (
                app.doc["basicAuthUsername"].as_str(),
                open("basicAuthPassword")?,
            ) {
                Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
            } else {
                None
            };
            Ok(Route {
                url: app_url
                    .ok_or_else(|| anyhow::anyhow!("the application has no endpointUri"))?,
                verify_tls: app_tls,
                keys: signing_keys(state, &app.doc, now)?,
                auth,
                headers: vec![],
                accepted: vec![],
                retries: true,
            })
        }
    }
}

/// The signature headers for a body sent at `ts_ms` (SPEC §8).
pub fn signature_headers(
    state: &AppState,
    id: &str,
    ts_ms: i64,
    body: &str,
    keys: &[String],
) -> Vec<(&'static str, String)> {
    let space_message = format!("{ts_ms}:{body}");
    let ts_s = ts_ms / 1000;
    let standard_message = format!("{id}.{ts_s}.{body}");
    let mut out = vec![
        ("x-space-timestamp", ts_ms.to_string()),
        (
            "x-space-public-key-signature",
            state.secrets.sign(space_message.as_bytes()),
        ),
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts_s.to_string()),
    ];
    if let Some(current) = keys.first() {
        out.push((
            "x-space-signature",
            hex::encode(hmac_sha256(current, space_message.as_bytes())),
        ));
        let sigs: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    "v1,{}",
                    base64(&hmac_sha256(k, standard_message.as_bytes()))
                )
            })
            .collect();
        out.push(("webhook-signature", sigs.join(" ")));
    }
    out
}

fn backoff(attempts: i64) -> i64 {
    let exp = BACKOFF_BASE_MS.saturating_mul(1i64 << (attempts - 1).clamp(0, 30));
    let base = exp.min(BACKOFF_MAX_MS);
    // ±20 % jitter so that retries from many deliveries do not arrive together.
    let jitter = (base as f64 * (rand::random::<f64>() * 0.4 - 0.2)) as i64;
    (base + jitter).max(100)
}

async fn send_one(state: &AppState, mut d: Delivery) -> anyhow::Result<()> {
    let app = state.apps.app(d.app_id).await?;
    let webhook = match (&app, &d.webhook_id) {
        (Some(app), Some(w)) => state.apps.item(app.id, "webhook", "", w).await?,
        _ => None,
    };
    let give_up = |d: &mut Delivery, why: &str| {
        d.status = "failed".into();
        d.last_error = Some(why.to_string());
    };
    let Some(app) = app else {
        return Ok(());
    };
    let webhook_off = webhook
        .as_ref()
        .is_none_or(|w| w.value["enabled"] == json!(false) || w.value["archived"] == json!(true));
    if (d.kind == "event" && (app.archived || webhook_off)) || (d.kind == "init" && app.archived) {
        give_up(&mut d, "the application or webhook is archived or disabled");
        return Ok(state.apps.finish_delivery(&d).await?);
    }
    let route = match route(state, &app, webhook.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            give_up(&mut d, &e.to_string());
            return Ok(state.apps.finish_delivery(&d).await?);
        }
    };
    let ts = now_ms();
    let mut headers = HeaderMap::new();
    for (name, value) in &route.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let Ok(body) = state.secrets.open(&d.body) else {
        give_up(&mut d, "the stored body cannot be opened");
        return Ok(state.apps.finish_delivery(&d).await?);
    };
    let json_body = serde_json::from_str::<Value>(&body).is_ok();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static(if json_body {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    for (name, value) in signature_headers(state, &d.id, ts, &body, &route.keys) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    if let Some(auth) = &route.auth {
        if let Ok(v) = HeaderValue::from_str(auth) {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
    }
    let outcome = state
        .fetcher
        .post(&route.url, headers, body, route.verify_tls, SEND_TIMEOUT)
        .await;
    d.attempts += 1;
    let ok = match &outcome {
        Ok(p) => {
            d.last_status = Some(p.status as i64);
            d.last_error = None;
            (200..300).contains(&p.status) || route.accepted.contains(&p.status)
        }
        Err(e) => {
            d.last_error = Some(e.to_string());
            false
        }
    };
    if ok {
        d.status = "delivered".into();
    } else if route.retries && d.attempts < MAX_ATTEMPTS {
        d.next_attempt_utc = now_ms() + backoff(d.attempts);
    } else {
        d.status = "failed".into();
    }
    state.apps.finish_delivery(&d).await?;
    // An uninstalled application is archived once it acknowledges, or when it never answers.
    if d.kind == "uninstall" && d.status != "pending" {
        archive(state, app.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    Ok(())
}
