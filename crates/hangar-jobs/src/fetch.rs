//! Fetching a remote URL for an upload without letting a user reach what the server can reach
//! (SPEC §11): http and https only; every address the host resolves to is checked and the connection
//! is pinned to the checked addresses (no second DNS answer can swap in another); redirects are
//! followed by hand, at most 3, each hop checked again; connect and first-byte time-outs, an idle
//! time-out on the body, no system proxies. The operator's allow-list opens named hosts.

use futures_util::{StreamExt, TryStreamExt};
use hangar_blob::ByteStream;
use hangar_core::net::{is_forbidden, AllowList};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use url::{Host, Url};

const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the URL is not a valid http(s) URL: {0}")]
    BadUrl(String),
    #[error("the server may not fetch from {0}")]
    Forbidden(String),
    #[error("the remote server could not be reached or failed: {0}")]
    Failed(String),
    #[error("the remote server did not answer in time")]
    Timeout,
}

/// Time limits for one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Connecting, and then receiving the response head.
    pub first_byte: Duration,
    /// Longest pause while the body arrives.
    pub idle: Duration,
    /// The whole fetch, body included.
    pub total: Duration,
}

/// A response ready to be streamed.
pub struct Fetched {
    pub body: ByteStream,
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
}

pub struct Fetcher {
    allow: AllowList,
    limits: FetchLimits,
}

impl Fetcher {
    pub fn new(allow: AllowList, limits: FetchLimits) -> Self {
        Self { allow, limits }
    }

    /// The addresses to connect to for `url`, after the checks; errors say why not.
    async fn checked_addresses(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| FetchError::BadUrl("no port".into()))?;
        let host = url
            .host()
            .ok_or_else(|| FetchError::BadUrl("no host".into()))?;
        let (name, addrs): (String, Vec<SocketAddr>) = match host {
            Host::Ipv4(ip) => (ip.to_string(), vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            Host::Ipv6(ip) => (ip.to_string(), vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            Host::Domain(domain) => {
                let found = tokio::time::timeout(
                    self.limits.first_byte,
                    tokio::net::lookup_host((domain, port)),
                )
                .await
                .map_err(|_| FetchError::Timeout)?
                .map_err(|e| FetchError::Failed(format!("cannot resolve {domain}: {e}")))?;
                (domain.to_string(), found.collect())
            }
        };
        if addrs.is_empty() {
            return Err(FetchError::Failed(format!("{name} has no address")));
        }
        if self.allow.allows(&name, port) {
            return Ok(addrs);
        }
        // A name with any internal address is refused whole: otherwise which address the client
        // picks would decide.
        // The refusal names the host the caller gave, never the internal address it resolved to:
        // that would map the inside of the network for whoever asks.
        if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
            tracing::info!(host = %name, address = %bad.ip(), "refused to fetch from an internal address");
            return Err(FetchError::Forbidden(name));
        }
        Ok(addrs)
    }

    fn client_for(&self, url: &Url, addrs: &[SocketAddr]) -> Result<reqwest::Client, FetchError> {
        self.client_with(url, addrs, true)
    }

    fn client_with(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
        verify_tls: bool,
    ) -> Result<reqwest::Client, FetchError> {
        let mut builder = reqwest::Client::builder()
            .danger_accept_invalid_certs(!verify_tls)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.limits.first_byte)
            .dns_resolver(std::sync::Arc::new(RefuseResolver))
            .user_agent(concat!("Hangar/", env!("CARGO_PKG_VERSION")));
        if let Some(Host::Domain(domain)) = url.host() {
            // Pin the connection to the addresses that were checked.
            builder = builder.resolve_to_addrs(domain, addrs);
        }
        builder
            .build()
            .map_err(|e| FetchError::Failed(e.to_string()))
    }

    /// Opens `url` and answers its body as a stream, after following at most 3 checked redirects.
    pub async fn open(&self, raw: &str) -> Result<Fetched, FetchError> {
        let mut url = Url::parse(raw).map_err(|e| FetchError::BadUrl(e.to_string()))?;
        for _ in 0..=MAX_REDIRECTS {
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(FetchError::BadUrl(format!(
                    "the scheme {:?} is not http or https",
                    url.scheme()
                )));
            }
            let addrs = self.checked_addresses(&url).await?;
            let client = self.client_for(&url, &addrs)?;
            let response =
                tokio::time::timeout(self.limits.first_byte, client.get(url.clone()).send())
                    .await
                    .map_err(|_| FetchError::Timeout)?
                    .map_err(|e| {
                        if e.is_timeout() {
                            FetchError::Timeout
                        } else {
                            FetchError::Failed(describe(&e))
                        }
                    })?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| FetchError::Failed(format!("a {status} without a Location")))?;
                url = url
                    .join(location)
                    .map_err(|e| FetchError::BadUrl(e.to_string()))?;
                continue;
            }
            if !status.is_success() {
                // The remote body is never read, let alone echoed back.
                return Err(FetchError::Failed(format!(
                    "the remote server answered {status}"
                )));
            }
            let content_length = response.content_length();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = hangar_blob::idle_limited(
                response
                    .bytes_stream()
                    .map_err(std::io::Error::other)
                    .boxed(),
                self.limits.idle,
            );
            return Ok(Fetched {
                body,
                content_length,
                content_type,
            });
        }
        Err(FetchError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// What a webhook endpoint answered.
pub struct Posted {
    pub status: u16,
}

/// Largest part of a webhook endpoint's answer that is read (and thrown away).
const POST_RESPONSE_LIMIT: usize = 64 * 1024;

impl Fetcher {
    /// POSTs `body` to `raw` under the same address rules as `open`, following no redirect (a 3xx is
    /// an answer like any other), within `timeout` for the whole exchange, reading at most 64 KiB of
    /// the answer.
    pub async fn post(
        &self,
        raw: &str,
        headers: reqwest::header::HeaderMap,
        body: String,
        verify_tls: bool,
        timeout: Duration,
    ) -> Result<Posted, FetchError> {
        let url = Url::parse(raw).map_err(|e| FetchError::BadUrl(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(FetchError::BadUrl(format!(
                "the scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        let exchange = async {
            let addrs = self.checked_addresses(&url).await?;
            let client = self.client_with(&url, &addrs, verify_tls)?;
            let mut response = client
                .post(url.clone())
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|e| FetchError::Failed(describe(&e)))?;
            let status = response.status().as_u16();
            let mut read = 0;
            while read < POST_RESPONSE_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            Ok(Posted { status })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

/// Connection errors without the URL's query string (which may hold secrets of the user's).
fn describe(e: &reqwest::Error) -> String {
    let mut text = String::from(if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Resolves nothing: every name a fetch may use was resolved, checked and pinned beforehand.
struct RefuseResolver;

impl reqwest::dns::Resolve for RefuseResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move { Err(format!("{name} was not checked before connecting").into()) })
    }
}
