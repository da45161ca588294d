//! The API described (SPEC §9.9): an OpenAPI 3.1 document of every route at `/api/openapi.json`,
//! and the same document as a self-contained web page at `/api/docs`.
//!
//! The document is built from the operation table in `operations.rs` and the shapes in
//! `schemas.rs` rather than from annotations on the handlers, so that describing a route never
//! touches its code; `tests.rs` compares the table with the routes the sources register.

mod operations;
mod page;
mod schemas;
#[cfg(test)]
mod tests;

use crate::{ApiError, AppState};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The two routes, serving what was built once when the router was made.
pub fn router() -> Router<AppState> {
    let built = match document() {
        Ok(doc) => Ok(Arc::new(Built {
            json: doc.to_string(),
            page: page::render(&doc),
        })),
        Err(e) => Err(e),
    };
    if let Err(e) = &built {
        tracing::error!("the OpenAPI document could not be built: {e}");
    }
    let built = Arc::new(built);
    let for_json = built.clone();
    Router::new()
        .route(
            "/api/openapi.json",
            get(move || async move {
                match for_json.as_ref() {
                    Ok(b) => json_answer(&b.json),
                    Err(e) => ApiError::internal(e).into_response(),
                }
            }),
        )
        .route(
            "/api/docs",
            get(move || async move {
                match built.as_ref() {
                    Ok(b) => page_answer(&b.page),
                    Err(e) => ApiError::internal(e).into_response(),
                }
            }),
        )
}

struct Built {
    json: String,
    page: String,
}

fn json_answer(body: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The page runs no script and loads nothing: its policy says so to the browser as well.
pub(crate) const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn page_answer(body: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

const DESCRIPTION: &str = "Hangar, a self-hosted file and attachment server. \
Every error of the `/api/v1` and `/api/http` families, of `/uploads`, `/d/` and `/s/` is JSON \
`{\"errorText\", \"httpStatusCode\", \"error\"}` (the `Error` schema); `/oauth/token` answers RFC 6749 \
errors instead. `HEAD` is accepted wherever `GET` is. Callers authenticate with a bearer token \
(`Authorization: Bearer hgr_…`: a personal token from `POST /api/v1/me/tokens`, or an application's) \
or with the session cookie of `POST /api/v1/auth/login`; cookie-authenticated changes must come from \
the server's own origin. docs/api.md in the source tree explains every rule behind these answers.";

/// The whole OpenAPI document.
pub(crate) fn document() -> Result<Value, String> {
    let mut paths = Map::new();
    let mut tags: Vec<String> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (n, line) in operations::OPERATIONS.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let op = Operation::parse(line).map_err(|e| format!("operation line {}: {e}", n + 1))?;
        if !tags.contains(&op.tag) {
            tags.push(op.tag.clone());
        }
        let (path, value) = op.to_openapi()?;
        let id = value["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !ids.insert(id.clone()) {
            return Err(format!("operation id {id} twice"));
        }
        let item = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let method = op.method.to_ascii_lowercase();
        if item.get(&method).is_some() {
            return Err(format!("{} {path} twice", op.method));
        }
        item[method] = value;
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Hangar",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas::schemas()?,
            "responses": {
                "Error": {
                    "description": "An error: `error` is the machine-readable code, `errorText` says \
                        what went wrong for a person",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token `hgr_…`: a member's personal token or an application's token",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "hangar_session",
                    "description": "The session cookie set by POST /api/v1/auth/login",
                },
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "OAuth client authentication: client id and secret (or send them as form fields)",
                },
            },
        },
    }))
}

/// One line of the operation table.
struct Operation {
    method: String,
    /// The path as written in the table (`{id:int}`).
    path: String,
    tag: String,
    who: String,
    summary: String,
    parameters: String,
    body: String,
    responses: String,
}

impl Operation {
    fn parse(line: &str) -> Result<Self, String> {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [head, tag, who, summary, parameters, body, responses] = fields[..] else {
            return Err(format!("{} fields instead of 7", fields.len()));
        };
        let (method, path) = head
            .split_once(' ')
            .ok_or_else(|| "no path after the method".to_string())?;
        Ok(Self {
            method: method.to_string(),
            path: path.trim().to_string(),
            tag: tag.to_string(),
            who: who.to_string(),
            summary: summary.to_string(),
            parameters: parameters.to_string(),
            body: body.to_string(),
            responses: responses.to_string(),
        })
    }

    /// The OpenAPI path (`{id}`) and operation object.
    fn to_openapi(&self) -> Result<(String, Value), String> {
        let mut parameters = Vec::new();
        let mut path = String::new();
        for segment in self.path.split('/').skip(1) {
            path.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => {
                    let (name, ty) = param.split_once(':').unwrap_or((param, "str"));
                    parameters.push(json!({
                        "name": name, "in": "path", "required": true, "schema": schemas::type_of(ty)?,
                    }));
                    path.push_str(&format!("{{{name}}}"));
                }
                None => path.push_str(segment),
            }
        }
        let has_path_params = !parameters.is_empty();
        for p in self.parameters.split_whitespace().filter(|p| *p != "-") {
            parameters.push(parameter(p)?);
        }
        let get_like = matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let security = match self.who.as_str() {
            "none" | "signed" => json!([]),
            "optional" => json!([{}, {"bearer": []}, {"session": []}]),
            "member" => json!([{"bearer": []}, {"session": []}]),
            "token" => json!([{"bearer": []}]),
            "client" => json!([{"clientBasic": []}, {}]),
            other => return Err(format!("unknown caller kind {other}")),
        };
        let mut op = json!({
            "operationId": operation_id(&self.method, &path),
            "tags": [self.tag],
            "summary": self.summary,
            "security": security,
        });
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters.clone());
        }
        let mut json_body = false;
        if self.body != "-" {
            let (body, required) = match self.body.strip_prefix('?') {
                Some(b) => (b, false),
                None => (self.body.as_str(), true),
            };
            let mut content = Map::new();
            for alternative in body.split(',') {
                let (media, schema) = request_content(alternative.trim())?;
                json_body |= media == "application/json";
                content.insert(media, json!({"schema": schema}));
            }
            op["requestBody"] = json!({"required": required, "content": content});
        }
        let mut responses = Map::new();
        for r in self.responses.split_whitespace() {
            let (code, kind) = r.split_once(':').unwrap_or((r, ""));
            let status: u16 = code.parse().map_err(|_| format!("bad status {code}"))?;
            responses.insert(code.to_string(), response(status, kind)?);
        }
        // What every operation of its kind may answer (see operations.rs).
        let needs_caller = matches!(self.who.as_str(), "member" | "token" | "optional");
        let mut automatic = vec![503];
        if needs_caller {
            automatic.push(401);
        }
        // Changes: read-only tokens and the CSRF check; application-only calls: other callers.
        if (self.who == "member" && !get_like) || self.who == "token" {
            automatic.push(403);
        }
        if !parameters.is_empty() || self.body != "-" {
            automatic.push(400);
        }
        if has_path_params {
            automatic.push(404);
        }
        if json_body {
            automatic.extend([413, 415]);
        }
        for status in automatic {
            responses
                .entry(status.to_string())
                .or_insert_with(|| json!({"$ref": "#/components/responses/Error"}));
        }
        op["responses"] = Value::Object(responses);
        Ok((path, op))
    }
}

/// `get_api_v1_attachments_id` for `GET /api/v1/attachments/{id}`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !word.is_empty() {
            id.push('_');
            id.push_str(word);
        }
    }
    id
}

/// `q:name!:TYPE` or `h:Name:TYPE`.
fn parameter(spec: &str) -> Result<Value, String> {
    let mut parts = spec.splitn(3, ':');
    let (place, name, ty) = match (parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(n), Some(t)) => (p, n, t),
        _ => return Err(format!("bad parameter {spec}")),
    };
    let place = match place {
        "q" => "query",
        "h" => "header",
        other => return Err(format!("bad parameter place {other}")),
    };
    let (name, required) = match name.strip_suffix('!') {
        Some(n) => (n, true),
        None => (name, false),
    };
    Ok(json!({"name": name, "in": place, "required": required, "schema": schemas::type_of(ty)?}))
}

fn request_content(spec: &str) -> Result<(String, Value), String> {
    let binary = json!({"type": "string", "format": "binary"});
    if spec == "raw" {
        return Ok(("application/octet-stream".into(), binary));
    }
    if let Some(media) = spec.strip_prefix("raw=") {
        return Ok((media.into(), binary));
    }
    let (kind, schema) = spec
        .split_once(':')
        .ok_or_else(|| format!("bad body {spec}"))?;
    let media = match kind {
        "json" => "application/json",
        "form" => "application/x-www-form-urlencoded",
        "multipart" => "multipart/form-data",
        other => return Err(format!("bad body kind {other}")),
    };
    Ok((media.into(), schemas::type_of(schema)?))
}

fn response(status: u16, kind: &str) -> Result<Value, String> {
    if kind.is_empty() {
        return Ok(json!({"$ref": "#/components/responses/Error"}));
    }
    let description = match status {
        460 => "Checksum Mismatch (tus)",
        s => axum::http::StatusCode::from_u16(s)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Answer"),
    };
    if kind == "-" {
        return Ok(json!({"description": description}));
    }
    // `html+Error`: either, as the request's credentials decide.
    let mut content = Map::new();
    for kind in kind.split('+') {
        let (media, schema) = match kind {
            "ok" => (
                "application/json",
                json!({"$ref": "#/components/schemas/Ok"}),
            ),
            "str" => ("application/json", json!({"type": "string"})),
            "str?" => ("application/json", json!({"type": ["string", "null"]})),
            "bytes" => ("*/*", json!({"type": "string", "format": "binary"})),
            "html" => ("text/html", json!({"type": "string"})),
            "text" => ("text/plain", json!({"type": "string"})),
            schema => ("application/json", schemas::type_of(schema)?),
        };
        content.insert(media.to_string(), json!({"schema": schema}));
    }
    Ok(json!({"description": description, "content": content}))
}
