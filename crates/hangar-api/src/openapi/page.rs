//! The OpenAPI document rendered on the server as one HTML page: no script, no external asset.

use serde_json::Value;
use std::fmt::Write;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#fff}\
main{max-width:72rem;margin:0 auto;padding:1rem 1.5rem 4rem}\
h1{margin:.5rem 0}h2{margin-top:2.5rem;border-bottom:2px solid #dde3ea;padding-bottom:.2rem}\
nav ul{columns:3 14rem;padding-left:1.2rem}\
section.op{border:1px solid #dde3ea;border-radius:6px;margin:.8rem 0;padding:.5rem .9rem}\
.op h3{margin:.2rem 0;font-size:1rem;font-family:ui-monospace,monospace;word-break:break-all}\
.m{display:inline-block;min-width:4.5rem;text-align:center;border-radius:4px;color:#fff;padding:0 .4rem;\
margin-right:.5rem;font-weight:600}\
.get{background:#2b6cb0}.post{background:#2f855a}.patch{background:#b7791f}.put{background:#6b46c1}\
.delete{background:#c53030}.head,.options{background:#4a5568}\
table{border-collapse:collapse;margin:.3rem 0;font-size:.9rem}\
td,th{border:1px solid #e2e8f0;padding:.15rem .5rem;text-align:left;vertical-align:top}\
code{font-family:ui-monospace,monospace;font-size:.88em;background:#f1f4f8;padding:0 .2rem;border-radius:3px}\
.who{color:#4a5568;font-size:.9rem}";

const METHODS: [&str; 7] = ["get", "head", "options", "post", "put", "patch", "delete"];

/// The page, from the document.
pub(super) fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let version = doc["info"]["version"].as_str().unwrap_or("");
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{t} API</title><style>{STYLE}</style></head><body><main>\
         <h1>{t} API <small>{v}</small></h1><p>{d}</p>\
         <p>The same description as OpenAPI 3.1: <a href=\"openapi.json\"><code>/api/openapi.json</code></a>.</p>",
        t = escape(title),
        v = escape(version),
        d = inline_code(&escape(doc["info"]["description"].as_str().unwrap_or(""))),
    );
    let operations = operations(doc);
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    out.push_str("<nav><h2>Contents</h2><ul>");
    for tag in &tags {
        let _ = write!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            anchor(tag),
            escape(tag)
        );
    }
    out.push_str("<li><a href=\"#authentication\">Authentication</a></li>");
    out.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav>");
    authentication(&mut out, doc);
    for tag in &tags {
        let _ = write!(out, "<h2 id=\"{}\">{}</h2>", anchor(tag), escape(tag));
        for (path, method, op) in operations.iter().filter(|(_, _, op)| op["tags"][0] == *tag) {
            operation(&mut out, path, method, op);
        }
    }
    schemas(&mut out, doc);
    out.push_str("</main></body></html>");
    out
}

fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut found = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    found.push((path.as_str(), method, op));
                }
            }
        }
    }
    found
}

fn authentication(out: &mut String, doc: &Value) {
    out.push_str("<h2 id=\"authentication\">Authentication</h2><table><tr><th>name</th><th>kind</th><th>what</th></tr>");
    if let Some(schemes) = doc["components"]["securitySchemes"].as_object() {
        for (name, s) in schemes {
            let kind = match (s["type"].as_str(), s["scheme"].as_str(), s["in"].as_str()) {
                (Some("http"), Some(scheme), _) => format!("HTTP {scheme}"),
                (Some("apiKey"), _, Some(place)) => {
                    format!("{place} {}", s["name"].as_str().unwrap_or(""))
                }
                (t, _, _) => t.unwrap_or("").to_string(),
            };
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(name),
                escape(&kind),
                inline_code(&escape(s["description"].as_str().unwrap_or("")))
            );
        }
    }
    out.push_str("</table>");
}

fn operation(out: &mut String, path: &str, method: &str, op: &Value) {
    let id = op["operationId"].as_str().unwrap_or("");
    let _ = write!(
        out,
        "<section class=op id=\"{id}\"><h3><span class=\"m {method}\">{m}</span>{p}</h3><p>{s}</p>",
        id = escape(id),
        m = method.to_ascii_uppercase(),
        p = escape(path),
        s = escape(op["summary"].as_str().unwrap_or("")),
    );
    let who: Vec<String> = op["security"]
        .as_array()
        .map(|alternatives| {
            alternatives
                .iter()
                .map(|a| match a.as_object().and_then(|o| o.keys().next()) {
                    Some(k) => k.clone(),
                    None => "anonymous".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    let who = if who.is_empty() {
        "anonymous".to_string()
    } else {
        who.join(" or ")
    };
    let _ = write!(out, "<p class=who>Caller: {}</p>", escape(&who));
    if let Some(params) = op["parameters"].as_array() {
        out.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th></tr>");
        for p in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(p["name"].as_str().unwrap_or("")),
                escape(p["in"].as_str().unwrap_or("")),
                type_html(&p["schema"]),
                if p["required"] == true { "yes" } else { "no" }
            );
        }
        out.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        let required = if op["requestBody"]["required"] == true {
            ""
        } else {
            " (optional)"
        };
        let _ = write!(out, "<p>Request body{required}:</p><table>");
        for (media, c) in content {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                escape(media),
                type_html(&c["schema"])
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<table><tr><th>status</th><th>answer</th></tr>");
    if let Some(responses) = op["responses"].as_object() {
        for (status, r) in responses {
            let answer = if r.get("$ref").is_some() {
                "error (<a href=\"#schema-Error\">Error</a>)".to_string()
            } else {
                let mut answer = escape(r["description"].as_str().unwrap_or(""));
                if let Some(content) = r["content"].as_object() {
                    for (media, c) in content {
                        let _ = write!(
                            answer,
                            ": <code>{}</code> {}",
                            escape(media),
                            type_html(&c["schema"])
                        );
                    }
                }
                answer
            };
            let _ = write!(out, "<tr><td>{}</td><td>{answer}</td></tr>", escape(status));
        }
    }
    out.push_str("</table></section>");
}

fn schemas(out: &mut String, doc: &Value) {
    out.push_str("<h2 id=\"schemas\">Schemas</h2>");
    let Some(schemas) = doc["components"]["schemas"].as_object() else {
        return;
    };
    for (name, schema) in schemas {
        let _ = write!(
            out,
            "<section class=op id=\"schema-{n}\"><h3>{n}</h3>",
            n = escape(name)
        );
        match schema["properties"].as_object() {
            Some(properties) => {
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push_str("<table><tr><th>field</th><th>type</th><th>required</th></tr>");
                for (field, ty) in properties {
                    let _ = write!(
                        out,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        escape(field),
                        type_html(ty),
                        if required.contains(&field.as_str()) {
                            "yes"
                        } else {
                            "no"
                        }
                    );
                }
                out.push_str("</table>");
                if schema["additionalProperties"] == false {
                    out.push_str("<p>Other fields are refused.</p>");
                }
            }
            None => {
                let _ = write!(out, "<p>{}</p>", type_html(schema));
            }
        }
        out.push_str("</section>");
    }
}

/// A schema in a few words, with links to the named shapes.
fn type_html(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{n}\">{n}</a>", n = escape(name));
    }
    if let Some(any) = schema["anyOf"].as_array() {
        return any.iter().map(type_html).collect::<Vec<_>>().join(" | ");
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    match &schema["type"] {
        Value::String(t) if t == "array" => format!("[{}]", type_html(&schema["items"])),
        Value::String(t) if t == "string" && schema["format"] == "binary" => "bytes".into(),
        Value::String(t) => escape(t),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .map(escape)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}

/// Turns `` `x` `` of an already escaped text into `<code>x</code>`.
fn inline_code(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn anchor(tag: &str) -> String {
    let mut a = String::from("tag-");
    a.extend(tag.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        }
    }));
    a
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
