//! Sending one delivery: the `deliver` job. It POSTs the sealed body through the SSRF-safe fetcher
//! (no redirects, 20 s, capped answer) with the signature headers, and records the outcome on the
//! delivery. A failure asks the runner to run the job again at the delivery's next attempt
//! (exponential backoff with jitter, 16 attempts); a node that dies while sending loses its lease and
//! another node sends again: at least once, with a stable `webhook-id` for receivers to deduplicate on.

use crate::{backoff, Job, JobContext, JobError};
use hangar_core::app_model::{EndpointAuth, ItemKind, SecretName, Webhook};
use hangar_core::app_ops::archive_app;
use hangar_core::jobs::Deliver;
use hangar_core::now_ms;
use hangar_core::secrets::{base64, hmac_sha256, Secrets};
use hangar_core::store::{AppRecord, Delivery};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::Duration;

/// Attempts before a delivery is given up: with the backoff below, about five hours of trying.
const MAX_ATTEMPTS: i64 = 16;
/// First retry delay; each further one doubles, up to an hour.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Delivery attempts by outcome (`delivered`, `retrying`: failed and tried again later, `failed`:
/// given up), for the metrics of `hangar serve --metrics-listen`.
const DELIVERIES_METRIC: &str = "hangar_webhook_deliveries_total";

fn count_delivery(outcome: &'static str) {
    metrics::counter!(DELIVERIES_METRIC, "outcome" => outcome).increment(1);
}

#[async_trait::async_trait]
impl Job for Deliver {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let Some(d) = ctx.apps.delivery(&self.delivery_id).await? else {
            return Ok(()); // pruned
        };
        if d.status != "pending" {
            return Ok(()); // delivered or given up already (a job that ran twice)
        }
        send_one(ctx, d).await
    }
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

fn failed(why: impl std::fmt::Display) -> JobError {
    JobError::Failed(why.to_string())
}

fn route(secrets: &Secrets, app: &AppRecord, webhook: Option<&Webhook>) -> Result<Route, JobError> {
    let now = now_ms();
    let settings = &app.doc.settings;
    let app_url = settings.endpoint_uri.clone();
    let app_tls = settings.endpoint_ssl_verification;
    match webhook {
        Some(w) => {
            let (url, verify_tls) = match &w.endpoint {
                Some(e) => (e.url.clone(), e.ssl_verification),
                None => (app_url.ok_or_else(|| failed("no endpoint"))?, app_tls),
            };
            let open = |name| w.secrets.open(secrets, name).map_err(failed);
            let auth = match w.auth_type {
                EndpointAuth::Basic => Some(format!(
                    "Basic {}",
                    base64(
                        format!(
                            "{}:{}",
                            w.auth_username.as_deref().unwrap_or(""),
                            open(SecretName::Password)?.unwrap_or_default()
                        )
                        .as_bytes()
                    )
                )),
                EndpointAuth::Bearer => {
                    open(SecretName::BearerToken)?.map(|t| format!("Bearer {t}"))
                }
                EndpointAuth::None => None,
            };
            Ok(Route {
                url,
                verify_tls,
                keys: w
                    .secrets
                    .signing_keys(secrets, w.previous_signing_key_until, now)
                    .map_err(failed)?,
                auth,
                headers: w.open_headers(secrets).map_err(failed)?,
                accepted: w.accepted_http_response_codes.clone(),
                retries: w.do_retries,
            })
        }
        None => {
            let sealed = &app.doc.secrets;
            let open = |name| sealed.open(secrets, name).map_err(failed);
            let auth = if let Some(t) = open(SecretName::BearerAuthToken)? {
                Some(format!("Bearer {t}"))
            } else if let (Some(u), Some(p)) = (
                settings.basic_auth_username.as_deref(),
                open(SecretName::BasicAuthPassword)?,
            ) {
                Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
            } else {
                None
            };
            Ok(Route {
                url: app_url.ok_or_else(|| failed("the application has no endpointUri"))?,
                verify_tls: app_tls,
                keys: sealed
                    .signing_keys(secrets, app.doc.previous_signing_key_until, now)
                    .map_err(failed)?,
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
    secrets: &Secrets,
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
            secrets.sign(space_message.as_bytes()),
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

/// Gives the delivery up, recorded as failed with the reason (the job itself is done).
async fn give_up(ctx: &JobContext, mut d: Delivery, why: &str) -> Result<(), JobError> {
    d.status = "failed".into();
    d.last_error = Some(why.to_string());
    ctx.apps.finish_delivery(&d).await?;
    count_delivery("failed");
    Ok(())
}

fn headers_for(ctx: &JobContext, d: &Delivery, route: &Route, body: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &route.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let json_body = serde_json::from_str::<Value>(body).is_ok();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static(if json_body {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    for (name, value) in signature_headers(&ctx.secrets, &d.id, now_ms(), body, &route.keys) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    if let Some(auth) = &route.auth {
        if let Ok(v) = HeaderValue::from_str(auth) {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
    }
    headers
}

async fn send_one(ctx: &JobContext, mut d: Delivery) -> Result<(), JobError> {
    let Some(app) = ctx.apps.app(d.app_id).await? else {
        return Ok(());
    };
    let webhook = match &d.webhook_id {
        Some(w) => match ctx.apps.item(app.id, ItemKind::Webhook, "", w).await? {
            Some(item) => Some(item.get::<Webhook>()?),
            None => None,
        },
        None => None,
    };
    let webhook_off = webhook.as_ref().is_none_or(|w| !w.live());
    if (d.kind == "event" && (app.archived || webhook_off)) || (d.kind == "init" && app.archived) {
        return give_up(ctx, d, "the application or webhook is archived or disabled").await;
    }
    let route = match route(&ctx.secrets, &app, webhook.as_ref()) {
        Ok(r) => r,
        Err(e) => return give_up(ctx, d, &e.to_string()).await,
    };
    let Ok(body) = ctx.secrets.open(&d.body) else {
        return give_up(ctx, d, "the stored body cannot be opened").await;
    };
    let headers = headers_for(ctx, &d, &route, &body);
    let outcome = ctx
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
    let retry = !ok && route.retries && d.attempts < MAX_ATTEMPTS;
    if ok {
        d.status = "delivered".into();
    } else if retry {
        let delay = backoff(d.attempts, BACKOFF_BASE, BACKOFF_MAX);
        d.next_attempt_utc = now_ms() + delay.as_millis() as i64;
    } else {
        d.status = "failed".into();
    }
    ctx.apps.finish_delivery(&d).await?;
    count_delivery(if ok {
        "delivered"
    } else if retry {
        "retrying"
    } else {
        "failed"
    });
    // An uninstalled application is archived once it acknowledges, or when it never answers.
    if d.kind == "uninstall" && d.status != "pending" {
        archive_app(ctx.apps.as_ref(), app.id).await?;
    }
    if retry {
        return Err(JobError::RetryAt {
            at: d.next_attempt_utc,
            reason: d
                .last_error
                .clone()
                .unwrap_or_else(|| format!("the endpoint answered {}", d.last_status.unwrap_or(0))),
        });
    }
    Ok(())
}
