//! A small clamd client (SPEC §9.6): `zPING`, and `zINSTREAM` fed from a byte stream in chunks of at
//! most 64 KiB, each prefixed by its length as 4 big-endian bytes, ended by a zero-length chunk
//! (clamd(8), "INSTREAM"). Over TCP or a Unix socket, with connect and read/write time-outs.
//!
//! Written by hand rather than taken from crates.io: the protocol is these few lines, and what
//! matters here is easier to hold to in our own code: time-outs on the connection and on every
//! write and read, telling "clamd cannot be reached" (try again later) from "clamd answered" (record
//! it), and reading clamd's answer after it cut a stream off at its size limit. Of the crates there,
//! `clamd-client` (a work in progress, last released in 2022) and `clam-client` (blocking) are not
//! kept up; `clamav-client` is, and is the one to move to if this module ever has to grow. Memory
//! stays flat: one chunk is in flight at a time.

use futures_util::StreamExt;
use hangar_blob::ByteStream;
use hangar_core::scan::ScanVerdict;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest chunk sent to clamd.
const CHUNK: usize = 64 * 1024;
/// Longest answer read from clamd (a signature name is short).
const MAX_REPLY: usize = 4096;

/// Where clamd listens: `host:port` (also written `tcp://host:port`) or `unix:/path/to/clamd.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// `host:port`, `[v6]:port` included, as given.
    Tcp(String),
    Unix(PathBuf),
}

impl ClamdAddr {
    pub fn parse(text: &str) -> Result<ClamdAddr, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            // `unix:/run/clamd.sock` and `unix:///run/clamd.sock` name the same socket.
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(format!(
                    "{text:?}: a Unix socket is `unix:` and an absolute path (unix:/run/clamav/clamd.ctl)"
                ));
            }
            return Ok(ClamdAddr::Unix(PathBuf::from(path)));
        }
        let authority = text.strip_prefix("tcp://").unwrap_or(text);
        let bad = || {
            format!(
                "{text:?} is not a clamd address: give host:port (127.0.0.1:3310) or unix:/path"
            )
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
        if port == 0
            || host.is_empty()
            || authority.contains('/')
            || (host.contains(':') && !bracketed)
        {
            return Err(bad());
        }
        Ok(ClamdAddr::Tcp(authority.to_string()))
    }
}

impl std::fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddr::Tcp(authority) => f.write_str(authority),
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect to clamd at {addr}: {cause}")]
    Unreachable { addr: String, cause: String },
    #[error("clamd at {addr} did not answer within {secs} s")]
    TimedOut { addr: String, secs: u64 },
    #[error("the connection to clamd at {addr} broke: {cause}")]
    Broken { addr: String, cause: String },
    #[error("clamd at {addr} answered {reply:?}")]
    Unexpected { addr: String, reply: String },
    #[error("cannot read the bytes to scan: {0}")]
    Source(std::io::Error),
}

/// A byte connection to clamd, whichever the socket.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// A clamd to talk to. Each command uses a connection of its own (clamd's `z` commands answer once
/// and close).
#[derive(Debug, Clone)]
pub struct Clamd {
    addr: ClamdAddr,
    /// To connect.
    pub connect_timeout: Duration,
    /// For each write, and for the answer once the stream is sent (clamd scans then; its own
    /// `MaxScanTime` bounds that).
    pub io_timeout: Duration,
}

impl Clamd {
    pub fn new(addr: ClamdAddr) -> Clamd {
        Clamd {
            addr,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(180),
        }
    }

    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, ClamdError> {
        let unreachable = |cause: String| ClamdError::Unreachable {
            addr: self.addr.to_string(),
            cause,
        };
        let connecting = async {
            Ok::<Box<dyn Connection>, std::io::Error>(match &self.addr {
                ClamdAddr::Tcp(authority) => {
                    Box::new(tokio::net::TcpStream::connect(authority.as_str()).await?)
                }
                ClamdAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            })
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!(
                "no connection within {} s",
                self.connect_timeout.as_secs()
            ))),
        }
    }

    fn timed_out(&self) -> ClamdError {
        ClamdError::TimedOut {
            addr: self.addr.to_string(),
            secs: self.io_timeout.as_secs(),
        }
    }

    fn broken(&self, e: std::io::Error) -> ClamdError {
        ClamdError::Broken {
            addr: self.addr.to_string(),
            cause: e.to_string(),
        }
    }

    async fn send(&self, conn: &mut Box<dyn Connection>, bytes: &[u8]) -> Result<(), ClamdError> {
        match tokio::time::timeout(self.io_timeout, conn.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.broken(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// clamd's answer: up to its NUL terminator or the end of the connection.
    async fn reply(&self, conn: &mut Box<dyn Connection>) -> Result<String, ClamdError> {
        let reading = async {
            let mut reply = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&buf[..n]);
                if reply.contains(&0) || reply.len() >= MAX_REPLY {
                    break;
                }
            }
            Ok::<_, std::io::Error>(reply)
        };
        let reply = match tokio::time::timeout(self.io_timeout, reading).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(self.broken(e)),
            Err(_) => return Err(self.timed_out()),
        };
        let end = reply.iter().position(|b| *b == 0).unwrap_or(reply.len());
        Ok(String::from_utf8_lossy(&reply[..end]).trim().to_string())
    }

    /// `zPING`: whether clamd answers.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        let mut conn = self.connect().await?;
        self.send(&mut conn, b"zPING\0").await?;
        match self.reply(&mut conn).await? {
            reply if reply == "PONG" => Ok(()),
            reply => Err(ClamdError::Unexpected {
                addr: self.addr.to_string(),
                reply,
            }),
        }
    }

    /// Streams `bytes` to clamd with `zINSTREAM` and reads its verdict. An error means that nothing
    /// is known about the bytes (clamd unreachable, slow, or answering nonsense): try again later.
    pub async fn scan(&self, mut bytes: ByteStream) -> Result<ScanVerdict, ClamdError> {
        let mut conn = self.connect().await?;
        self.send(&mut conn, b"zINSTREAM\0").await?;
        let mut cut_off = None;
        'stream: while let Some(piece) = bytes.next().await {
            let piece = piece.map_err(ClamdError::Source)?;
            for chunk in piece.chunks(CHUNK) {
                let mut framed = Vec::with_capacity(4 + chunk.len());
                // A chunk is at most 64 KiB, so its length fits the 4 bytes.
                framed.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
                framed.extend_from_slice(chunk);
                if let Err(e) = self.send(&mut conn, &framed).await {
                    // clamd answers and closes the connection as soon as the stream passes its
                    // StreamMaxLength: its answer says why the writes failed.
                    cut_off = Some(e);
                    break 'stream;
                }
            }
        }
        if cut_off.is_none() {
            if let Err(e) = self.send(&mut conn, &0u32.to_be_bytes()).await {
                cut_off = Some(e);
            }
        }
        let reply = match (self.reply(&mut conn).await, cut_off) {
            (Ok(reply), _) if !reply.is_empty() => reply,
            (_, Some(e)) => return Err(e),
            (Ok(reply), None) => reply,
            (Err(e), None) => return Err(e),
        };
        parse_verdict(&reply).ok_or_else(|| ClamdError::Unexpected {
            addr: self.addr.to_string(),
            reply,
        })
    }
}

/// clamd's answer to `INSTREAM`: `stream: OK`, `stream: NAME FOUND`, or `… ERROR`. None for anything
/// else, and for errors other than the size limit (which may pass: memory, a reload), so that the
/// scan is tried again.
pub fn parse_verdict(reply: &str) -> Option<ScanVerdict> {
    let reply = reply.trim();
    if reply.contains("size limit exceeded") {
        return Some(ScanVerdict::Failed(
            "the file is larger than clamd's StreamMaxLength".into(),
        ));
    }
    let result = reply.strip_prefix("stream:")?.trim();
    if result == "OK" {
        return Some(ScanVerdict::Clean);
    }
    let signature = result.strip_suffix(" FOUND")?.trim();
    (!signature.is_empty()).then(|| ScanVerdict::Infected(signature.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_documented() {
        assert_eq!(
            ClamdAddr::parse("127.0.0.1:3310"),
            Ok(ClamdAddr::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(
            ClamdAddr::parse("tcp://clamd.internal:3310"),
            Ok(ClamdAddr::Tcp("clamd.internal:3310".into()))
        );
        assert_eq!(
            ClamdAddr::parse("[::1]:3310"),
            Ok(ClamdAddr::Tcp("[::1]:3310".into()))
        );
        assert_eq!(
            ClamdAddr::parse("unix:/run/clamav/clamd.ctl"),
            Ok(ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            ClamdAddr::parse("unix:///run/clamav/clamd.ctl"),
            Ok(ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        for bad in [
            "",
            "clamd",
            "clamd:",
            "clamd:0",
            "clamd:99999",
            ":3310",
            "::1:3310",
            "unix:relative.sock",
            "http://clamd:3310",
            "tcp://clamd:3310/x",
        ] {
            assert!(ClamdAddr::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// A stand-in clamd on 127.0.0.1 that reads the command and `read` bytes of the stream, then
    /// answers `reply` (nothing when None) and closes: what clamd does at its StreamMaxLength, with
    /// the rest of the stream unread (so the close resets the connection).
    async fn fake_clamd(
        read: usize,
        reply: Option<&'static str>,
    ) -> (Clamd, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ClamdAddr::Tcp(listener.local_addr().unwrap().to_string());
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; b"zINSTREAM\0".len() + read];
            conn.read_exact(&mut got).await.unwrap();
            match reply {
                Some(reply) => {
                    conn.write_all(reply.as_bytes()).await.unwrap();
                    conn.write_all(b"\0").await.unwrap();
                }
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
            got
        });
        let mut clamd = Clamd::new(addr);
        clamd.io_timeout = Duration::from_millis(500);
        (clamd, server)
    }

    fn stream_of(len: usize) -> ByteStream {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..len.div_ceil(100_000))
            .map(|i| {
                Ok(bytes::Bytes::from(vec![
                    7u8;
                    (len - i * 100_000).min(100_000)
                ]))
            })
            .collect();
        Box::pin(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn the_stream_is_framed_in_chunks_of_at_most_64_kib() {
        // 100 000 bytes in one piece: a chunk of 65 536, one of 34 464, then the end.
        let framed = 4 + CHUNK + 4 + (100_000 - CHUNK) + 4;
        let (clamd, server) = fake_clamd(framed, Some("stream: OK")).await;
        assert_eq!(
            clamd.scan(stream_of(100_000)).await.unwrap(),
            ScanVerdict::Clean
        );
        let got = server.await.unwrap();
        let body = &got[b"zINSTREAM\0".len()..];
        assert_eq!(&got[..10], b"zINSTREAM\0");
        assert_eq!(&body[..4], &(CHUNK as u32).to_be_bytes());
        let second = 4 + CHUNK;
        assert_eq!(
            &body[second..second + 4],
            &((100_000 - CHUNK) as u32).to_be_bytes()
        );
        assert_eq!(&body[body.len() - 4..], &[0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_stream_cut_off_at_the_size_limit_is_a_failed_scan() {
        let (clamd, _server) =
            fake_clamd(70_000, Some("INSTREAM size limit exceeded. ERROR")).await;
        let verdict = clamd.scan(stream_of(8 << 20)).await.unwrap();
        assert!(matches!(verdict, ScanVerdict::Failed(_)), "{verdict:?}");
    }

    #[tokio::test]
    async fn silence_unreachability_and_nonsense_are_errors_to_retry() {
        let (clamd, _server) = fake_clamd(1000, None).await;
        let e = clamd.scan(stream_of(1000)).await.unwrap_err();
        assert!(matches!(e, ClamdError::TimedOut { .. }), "{e}");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let e = Clamd::new(ClamdAddr::Tcp(addr.clone()))
            .scan(stream_of(10))
            .await
            .unwrap_err();
        assert!(matches!(e, ClamdError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains(&addr), "{e}");
        let e = Clamd::new(ClamdAddr::Unix("/nonexistent/clamd.sock".into()))
            .ping()
            .await
            .unwrap_err();
        assert!(matches!(e, ClamdError::Unreachable { .. }), "{e}");

        let framed = 4 + 10 + 4;
        let (clamd, _server) = fake_clamd(framed, Some("Can't allocate memory ERROR")).await;
        let e = clamd.scan(stream_of(10)).await.unwrap_err();
        assert!(matches!(e, ClamdError::Unexpected { .. }), "{e}");
    }

    #[test]
    fn verdicts_parse_as_clamd_writes_them() {
        assert_eq!(parse_verdict("stream: OK"), Some(ScanVerdict::Clean));
        assert_eq!(
            parse_verdict("stream: Win.Test.EICAR_HDB-1 FOUND"),
            Some(ScanVerdict::Infected("Win.Test.EICAR_HDB-1".into()))
        );
        assert!(matches!(
            parse_verdict("INSTREAM size limit exceeded. ERROR"),
            Some(ScanVerdict::Failed(_))
        ));
        assert_eq!(parse_verdict("Can't allocate memory ERROR"), None);
        assert_eq!(parse_verdict("stream:  FOUND"), None);
        assert_eq!(parse_verdict(""), None);
    }
}
