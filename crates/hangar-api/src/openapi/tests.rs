//! The document against the routes the sources register, and its shape.
//!
//! axum cannot list a router's routes, so the registrations are read from the sources of this crate
//! and of the binary: every `.route("PATH", METHOD(…).METHOD(…)…)` call. Any other way of adding
//! routes (nesting, services, `on`, `any`) fails the scan, so that it cannot slip by unseen.

use super::document;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Routes registered on a listener other than the API's, with the reason they are not described.
const ELSEWHERE: &[(&str, &str, &str)] = &[(
    "GET",
    "/metrics",
    "served only on --metrics-listen (observe.rs), described in docs/operations.md",
)];

const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// Calls allowed inside a method router besides the methods themselves.
const NEUTRAL: [&str; 3] = ["layer", "route_layer", "with_state"];

fn sources() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [here.join("src"), here.join("../hangar/src")] {
        collect(&dir, &mut files);
    }
    assert!(files.len() > 20, "the sources were not found: {files:?}");
    files
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `(METHOD, path)` of every route registered in one source text.
fn registered(source: &str, file: &Path) -> Vec<(String, String)> {
    // Written in two pieces so that this file does not match itself.
    let route = concat!(".", "route(");
    for other in [
        concat!(".", "nest("),
        concat!(".", "nest_service("),
        concat!(".", "route_service("),
    ] {
        assert!(
            !source.contains(other),
            "{}: {other} is not understood by this scan; teach it, then describe the routes",
            file.display()
        );
    }
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(route) {
        rest = &rest[at + route.len()..];
        let text = rest.trim_start();
        let text = text
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("{}: a route whose path is not a literal", file.display()));
        let end = text.find('"').expect("end of the path literal");
        let path = &text[..end];
        let text = text[end + 1..].trim_start();
        let text = text.strip_prefix(',').expect("a comma after the path");
        for method in methods_of(text, file, path) {
            found.push((method.to_ascii_uppercase(), path.to_string()));
        }
    }
    found
}

/// The methods of the method router that starts `text` and ends at the `)` closing the call.
fn methods_of(text: &str, file: &Path, path: &str) -> Vec<String> {
    let mut methods = Vec::new();
    let mut depth = 0usize;
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // Skip a string literal inside a handler's arguments.
                while let Some(s) = chars.next() {
                    if s == '\\' {
                        chars.next();
                    } else if s == '"' {
                        break;
                    }
                }
                word.clear();
            }
            '(' => {
                if depth == 0 && !word.is_empty() {
                    if METHODS.contains(&word.as_str()) {
                        methods.push(word.clone());
                    } else if !NEUTRAL.contains(&word.as_str()) {
                        panic!(
                            "{}: route {path} uses {word}(…), which this scan does not understand",
                            file.display()
                        );
                    }
                }
                depth += 1;
                word.clear();
            }
            ')' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                word.clear();
            }
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            _ => word.clear(),
        }
    }
    assert!(
        !methods.is_empty(),
        "{}: route {path} has no method",
        file.display()
    );
    methods
}

fn registered_routes() -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for file in sources() {
        let source = std::fs::read_to_string(&file).expect("read source");
        // Comments may show routes by way of example.
        let source: String = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for route in registered(&source, &file) {
            assert!(all.insert(route.clone()), "{route:?} registered twice");
        }
    }
    for (method, path, _) in ELSEWHERE {
        assert!(
            all.remove(&(method.to_string(), path.to_string())),
            "{method} {path} is no longer registered: drop it from ELSEWHERE"
        );
    }
    all
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            all.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    all
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let doc = document().expect("document");
    let registered = registered_routes();
    let documented = documented_routes(&doc);
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "routes the server answers but the document does not describe (add them to \
         openapi/operations.rs): {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "operations the document describes but no source registers: {extra:?}"
    );
    assert!(
        registered.len() > 140,
        "only {} routes found",
        registered.len()
    );
}

#[test]
fn the_scan_reads_chained_methods_and_refuses_what_it_cannot_read() {
    let file = Path::new("example.rs");
    let source = concat!(
        "Router::new().",
        "route(\"/a/{id}\", get(a::get).patch(b).delete(axum::routing::delete(x)))\n",
        ".",
        "route(\n  \"/b\",\n  routing::post(create).options(|| async { \"(\" }).layer(l),\n)"
    );
    let found = registered(source, file);
    assert_eq!(
        found,
        vec![
            ("GET".to_string(), "/a/{id}".to_string()),
            ("PATCH".into(), "/a/{id}".into()),
            ("DELETE".into(), "/a/{id}".into()),
            ("POST".into(), "/b".into()),
            ("OPTIONS".into(), "/b".into()),
        ]
    );
    let any = concat!(".", "route(\"/c\", any(handler))");
    assert!(std::panic::catch_unwind(|| registered(any, file)).is_err());
    let nested = concat!(".", "nest(\"/x\", other())");
    assert!(std::panic::catch_unwind(|| registered(nested, file)).is_err());
}

#[test]
fn the_document_is_openapi_3_1_with_answers_and_resolvable_references() {
    let doc = document().expect("document");
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "hangar_session");
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(
        error["required"],
        serde_json::json!(["errorText", "httpStatusCode", "error"])
    );
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (status, r) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{method} {path}: status {status}"
                );
                assert!(
                    r.get("$ref").is_some() || r["description"].is_string(),
                    "{method} {path} {status} has no description"
                );
            }
            assert!(op["summary"].is_string() && op["operationId"].is_string());
            assert!(
                op["security"].is_array(),
                "{method} {path} says no security"
            );
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
        }
    }
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 100);
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("reference outside the document: {r}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "reference {r} does not resolve"
        );
    }
}

fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn the_page_shows_every_operation_and_loads_nothing() {
    let doc = document().expect("document");
    let page = super::page::render(&doc);
    for (method, path) in documented_routes(&doc) {
        let shown = format!(
            "<span class=\"m {}\">{method}</span>{path}",
            method.to_ascii_lowercase()
        );
        assert!(page.contains(&shown), "{method} {path} is not on the page");
    }
    for forbidden in [
        "<script", "<link", "src=", "url(", "@import", "http://", "https://",
    ] {
        assert!(!page.contains(forbidden), "the page has {forbidden}");
    }
}
