//! The S3-compatible server the tests use: the one named by `HANGAR_TEST_S3_*` (scripts/test.sh
//! starts one for the whole run), else one started by scripts/s3.sh for this test binary, stopped by
//! the script's watcher when the binary exits. A server that cannot be had fails the tests.

use super::{S3BlobStore, S3Config};
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Where the test server is and how to sign for it.
#[derive(Debug, Clone)]
pub(crate) struct TestS3 {
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

static SERVER: OnceLock<TestS3> = OnceLock::new();

pub(crate) fn server() -> &'static TestS3 {
    SERVER.get_or_init(|| {
        let vars: HashMap<String, String> = std::env::vars().collect();
        match vars.get("HANGAR_TEST_S3_ENDPOINT") {
            Some(_) => from_vars(&vars),
            None => start(),
        }
    })
}

fn from_vars(vars: &HashMap<String, String>) -> TestS3 {
    let get = |name: &str| {
        vars.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("HANGAR_TEST_S3_ENDPOINT is set but {name} is not"))
    };
    TestS3 {
        endpoint: get("HANGAR_TEST_S3_ENDPOINT"),
        bucket: vars
            .get("HANGAR_TEST_S3_BUCKET")
            .cloned()
            .unwrap_or_else(|| "hangar-test".to_string()),
        access_key_id: get("HANGAR_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: get("HANGAR_TEST_S3_SECRET_ACCESS_KEY"),
    }
}

/// Starts s3s-fs with scripts/s3.sh (building it first if this machine has none: minutes, once).
fn start() -> TestS3 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3.sh");
    let state = std::env::temp_dir().join(format!("hangar-test-s3-{}", std::process::id()));
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&state)
        .arg("--watch")
        .arg(std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "the S3 test server did not start ({} start): {}\n\
         (or point HANGAR_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY_ID and _SECRET_ACCESS_KEY at one)",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    from_vars(&vars)
}

/// The configuration of a store on the test server under a prefix of its own, so that tests
/// running side by side (and earlier runs) never see each other's objects.
pub(crate) fn config() -> S3Config {
    let server = server();
    let prefix = format!("test-{}/hangar", hex::encode(rand::random::<[u8; 6]>()));
    let mut config = S3Config::new(&format!("s3://{}/{prefix}", server.bucket)).unwrap();
    config.endpoint = Some(server.endpoint.clone());
    config.access_key_id = Some(server.access_key_id.clone());
    config.secret_access_key = Some(server.secret_access_key.clone());
    config.retry_timeout = Duration::from_secs(10);
    config
}

pub(crate) fn store() -> S3BlobStore {
    S3BlobStore::new(&config()).unwrap()
}
