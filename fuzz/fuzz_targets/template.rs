//! Webhook payload templates: checking and rendering never panic, rendering agrees with checking,
//! the output stays under its cap, and a template without special characters renders as itself.
#![no_main]
use hangar_core::apps::{check_template, render_template, TEMPLATE_OUTPUT_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (template, text) = input;
    let payload = serde_json::json!({"text": text, "n": 7, "nested": {"list": [text, 1]}});
    let checked = check_template(template);
    match render_template(template, &payload) {
        Ok(out) => {
            assert!(checked.is_ok());
            assert!(out.len() <= TEMPLATE_OUTPUT_LIMIT);
        }
        Err(e) => assert!(checked.is_err() || e == hangar_core::apps::TemplateError::TooLarge),
    }
    if !template.contains(['{', '\\']) {
        assert_eq!(render_template(template, &payload).unwrap(), template);
    }
    // A string value lands JSON-escaped: inside quotes it parses back to itself.
    let rendered = render_template("\"{{text}}\"", &payload).unwrap();
    let back: String = serde_json::from_str(&rendered).expect("escaped value parses");
    assert_eq!(back, text);
});
