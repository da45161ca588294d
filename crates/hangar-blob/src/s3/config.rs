//! Where an S3 blob store lives and how to reach it (SPEC §13): `s3://BUCKET/PREFIX`, an optional
//! endpoint (path-style addressing), a region and static credentials.

use std::time::Duration;

/// A setting that cannot be used; the message names the flag or variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct S3ConfigError(pub(crate) String);

/// Everything an [`S3BlobStore`](crate::S3BlobStore) needs. Build it with [`S3Config::new`] from a
/// storage URL (and set the fields), or with [`S3Config::from_env`] as `hangar serve` does.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Every key starts with `PREFIX/` (no slash at either end here; empty for the bucket's root).
    pub prefix: String,
    /// An S3-compatible server (`http://127.0.0.1:9000`, `https://minio.example`), addressed
    /// path-style (`ENDPOINT/BUCKET/KEY`); plain http is allowed because it was asked for (a local
    /// MinIO, a compose service name). None: AWS itself, over https.
    pub endpoint: Option<String>,
    pub region: String,
    /// None: object_store's default chain (web identity, ECS, instance metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// A temporary object is swept only when at least this old, whatever the caller asks: on AWS an
    /// object's age counts from the *start* of its multipart upload, so a shorter minimum could take
    /// a long upload's bytes in the moment between its last byte and its commit.
    pub temp_min_age: Duration,
    /// Objects up to this size are moved by a server-side copy; larger ones are streamed through
    /// Hangar into a new multipart upload (AWS copies at most 5 GiB in one request).
    pub copy_limit: u64,
    /// Attempts after the first for a failed request (5xx, throttling, connection errors), within
    /// `retry_timeout` from the first attempt.
    pub retries: usize,
    pub retry_timeout: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field("temp_min_age", &self.temp_min_age)
            .field("copy_limit", &self.copy_limit)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_REGION: &str = "us-east-1";

impl S3Config {
    /// The bucket and prefix of `storage_url` (`s3://BUCKET/PREFIX`), with the defaults: AWS, region
    /// `us-east-1`, the default credential chain.
    pub fn new(storage_url: &str) -> Result<S3Config, S3ConfigError> {
        let (bucket, prefix) = parse_storage_url(storage_url)?;
        Ok(S3Config {
            bucket,
            prefix,
            endpoint: None,
            region: DEFAULT_REGION.to_string(),
            access_key_id: None,
            secret_access_key: None,
            temp_min_age: Duration::from_secs(24 * 3600),
            copy_limit: 5 << 30,
            retries: 5,
            retry_timeout: Duration::from_secs(30),
        })
    }

    /// `storage_url` with `HANGAR_S3_ENDPOINT`, `HANGAR_S3_REGION`, `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` from the environment.
    pub fn from_env(storage_url: &str) -> Result<S3Config, S3ConfigError> {
        S3Config::from_vars(storage_url, |name| std::env::var(name).ok())
    }

    /// As [`S3Config::from_env`], with the variables looked up by `var`.
    pub fn from_vars(
        storage_url: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Config, S3ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut config = S3Config::new(storage_url)?;
        if let Some(endpoint) = var("HANGAR_S3_ENDPOINT") {
            config.endpoint = Some(check_endpoint(&endpoint)?);
        }
        if let Some(region) = var("HANGAR_S3_REGION") {
            config.region = region.trim().to_string();
        }
        config.access_key_id = var("AWS_ACCESS_KEY_ID");
        config.secret_access_key = var("AWS_SECRET_ACCESS_KEY");
        if config.access_key_id.is_some() != config.secret_access_key.is_some() {
            return Err(S3ConfigError(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be given together".into(),
            ));
        }
        Ok(config)
    }

    /// `s3://BUCKET/PREFIX`, for messages.
    pub fn location(&self) -> String {
        match self.prefix.is_empty() {
            true => format!("s3://{}", self.bucket),
            false => format!("s3://{}/{}", self.bucket, self.prefix),
        }
    }
}

/// `s3://BUCKET/PREFIX` → (BUCKET, PREFIX without slashes at its ends).
fn parse_storage_url(url: &str) -> Result<(String, String), S3ConfigError> {
    let bad = |why: &str| S3ConfigError(format!("--storage-url {url:?}: {why}"));
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("an S3 storage URL is s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's bucket naming rules, loosely: S3-compatible servers accept a little more.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'))
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if !bucket_ok {
        return Err(bad(
            "the bucket name must be 3 to 63 lowercase letters, digits, dots and hyphens",
        ));
    }
    let prefix = prefix.trim_matches('/');
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !prefix.is_empty() && !prefix.split('/').all(segment_ok) {
        return Err(bad(
            "the prefix must be letters, digits, '.', '-' and '_' in segments separated by single slashes",
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

fn check_endpoint(endpoint: &str) -> Result<String, S3ConfigError> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    let host = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
            Ok(endpoint.to_string())
        }
        _ => Err(S3ConfigError(format!(
            "HANGAR_S3_ENDPOINT {endpoint:?}: expected http(s)://HOST[:PORT] with no path"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn storage_urls_give_bucket_and_prefix() {
        let c = S3Config::new("s3://media-bucket/hangar/prod/").unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("media-bucket", "hangar/prod")
        );
        assert_eq!(c.location(), "s3://media-bucket/hangar/prod");
        assert_eq!(
            (c.region.as_str(), c.endpoint.as_deref()),
            ("us-east-1", None)
        );
        let root = S3Config::new("s3://media-bucket").unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.location(), "s3://media-bucket");
        for bad in [
            "file:///tmp/x",
            "s3://",
            "s3://Upper/x",
            "s3://ab/x",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
            "s3://bucket/a b",
        ] {
            let e = S3Config::new(bad).unwrap_err().to_string();
            assert!(e.contains("--storage-url"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_environment_gives_endpoint_region_and_credentials() {
        let c = S3Config::from_vars(
            "s3://bucket/p",
            vars(&[
                ("HANGAR_S3_ENDPOINT", "http://127.0.0.1:9000/"),
                ("HANGAR_S3_REGION", "eu-west-3"),
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region, "eu-west-3");
        assert_eq!(c.access_key_id.as_deref(), Some("AKID"));
        assert!(!format!("{c:?}").contains("very-secret"));
        // Empty variables count as unset.
        let c = S3Config::from_vars("s3://bucket/p", vars(&[("HANGAR_S3_REGION", "")])).unwrap();
        assert_eq!(c.region, "us-east-1");

        let e = S3Config::from_vars(
            "s3://bucket/p",
            vars(&[("HANGAR_S3_ENDPOINT", "minio:9000")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("HANGAR_S3_ENDPOINT"), "{e}");
        let e = S3Config::from_vars("s3://bucket/p", vars(&[("AWS_ACCESS_KEY_ID", "AKID")]))
            .unwrap_err();
        assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }
}
