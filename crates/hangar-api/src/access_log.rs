//! The access-log line (SPEC §9.9), formatted here rather than by `tracing`'s formatter when the
//! server's binary says where its lines go (`write_directly`).
//!
//! Every request writes one line, and `tracing_subscriber`'s formatter spent about 8% of the CPU
//! time of a small download on it: a visitor call and a `core::fmt` pass per field, and the
//! timestamp formatted in full every time. Here the line is written into a reused buffer, the
//! timestamp's date and time are formatted once per second, and the bytes go straight to the
//! server's batched stdout. The line is the same as `tracing`'s, key for key and in the same order,
//! as text or as JSON, and `HANGAR_LOG` still decides whether it is written (`tracing::enabled!`).
//! Without `write_directly` (the binary's own stderr logging, the crate's tests) the line is a
//! `tracing` event as before.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The target of the access-log lines (what `HANGAR_LOG` filters on).
pub const TARGET: &str = "hangar::access";

/// How the server's log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `tracing_subscriber`'s default format without colours: `key=value` fields.
    Text,
    /// One JSON object per line, the fields flattened (`flatten_event`).
    Json,
}

/// Where whole lines go.
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

struct Direct {
    format: Format,
    sink: Sink,
}

/// Set once by the binary, like `tracing`'s global subscriber, which it goes with.
static DIRECT: OnceLock<Direct> = OnceLock::new();

/// From now on, access-log lines are formatted here in `format` and handed whole (newline
/// included) to `sink`. Call it where the global `tracing` subscriber is installed, with the same
/// format and the same destination, so that the lines keep their order with the others. Only the
/// first call counts; it answers whether this one did.
pub fn write_directly(format: Format, sink: impl Fn(&[u8]) + Send + Sync + 'static) -> bool {
    DIRECT
        .set(Direct {
            format,
            sink: Box::new(sink),
        })
        .is_ok()
}

/// One request's line.
pub(crate) struct Fields<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_us: u64,
    pub caller: Option<i64>,
    pub client: IpAddr,
    /// Checked (`observe::valid_request_id`) or made by the server: `[A-Za-z0-9._-]`.
    pub request_id: &'a str,
}

pub(crate) fn write(fields: &Fields<'_>) {
    let Some(direct) = DIRECT.get() else {
        let duration_ms = fields.duration_us as f64 / 1e3;
        let caller = Caller(fields.caller);
        tracing::info!(
            target: TARGET,
            method = %fields.method,
            route = %fields.route,
            status = fields.status,
            bytes = fields.bytes,
            duration_ms = duration_ms,
            caller = %caller,
            client = %fields.client,
            request_id = %fields.request_id,
        );
        return;
    };
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    LINE.with(|line| {
        // Never re-entered: the sink does not log.
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        line.format(direct.format, fields, SystemTime::now());
        (direct.sink)(&line.bytes);
    });
}

thread_local! {
    static LINE: RefCell<Line> = const { RefCell::new(Line { bytes: Vec::new(), second: None, date_time: [0; 19] }) };
}

/// A thread's line buffer, and the formatted date and time of the second it last wrote.
struct Line {
    bytes: Vec<u8>,
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    date_time: [u8; 19],
}

impl Line {
    fn format(&mut self, format: Format, f: &Fields<'_>, now: SystemTime) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.second != Some(second) {
            self.date_time = date_time(second);
            self.second = Some(second);
        }
        let b = &mut self.bytes;
        b.clear();
        // Numbers and addresses are written with `itoa` and by hand rather than through `write!`:
        // `core::fmt` was half of this line's cost, on every request.
        let (between, json) = match format {
            Format::Text => (&TEXT, false),
            Format::Json => (&JSON, true),
        };
        let string = |b: &mut Vec<u8>, s: &str| {
            if json {
                json_string(b, s);
            } else {
                b.extend_from_slice(s.as_bytes());
            }
        };
        let mut n = itoa::Buffer::new();
        b.extend_from_slice(between[0]);
        b.extend_from_slice(&self.date_time);
        b.push(b'.');
        zero_padded(b, u64::from(since.subsec_micros()), 6);
        b.extend_from_slice(between[1]);
        string(b, f.method);
        b.extend_from_slice(between[2]);
        string(b, f.route);
        b.extend_from_slice(between[3]);
        b.extend_from_slice(n.format(f.status).as_bytes());
        b.extend_from_slice(between[4]);
        b.extend_from_slice(n.format(f.bytes).as_bytes());
        b.extend_from_slice(between[5]);
        milliseconds(b, f.duration_us);
        b.extend_from_slice(between[6]);
        caller(b, f.caller);
        b.extend_from_slice(between[7]);
        address(b, f.client);
        b.extend_from_slice(between[8]);
        string(b, f.request_id);
        b.extend_from_slice(between[9]);
    }
}

/// What comes before, between and after the values of a text line (`tracing`'s default format).
const TEXT: [&[u8]; 10] = [
    b"",
    b"Z  INFO hangar::access: method=",
    b" route=",
    b" status=",
    b" bytes=",
    b" duration_ms=",
    b" caller=",
    b" client=",
    b" request_id=",
    b"\n",
];

/// The same for a JSON line (`tracing`'s JSON format with `flatten_event`); strings are quoted.
const JSON: [&[u8]; 10] = [
    b"{\"timestamp\":\"",
    b"Z\",\"level\":\"INFO\",\"method\":",
    b",\"route\":",
    b",\"status\":",
    b",\"bytes\":",
    b",\"duration_ms\":",
    b",\"caller\":\"",
    b"\",\"client\":\"",
    b"\",\"request_id\":",
    b",\"target\":\"hangar::access\"}\n",
];

/// `value` in decimal with leading zeros to `width` digits (`value` has at most `width`).
fn zero_padded(b: &mut Vec<u8>, value: u64, width: usize) {
    let mut n = itoa::Buffer::new();
    let digits = n.format(value).as_bytes();
    b.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    b.extend_from_slice(digits);
}

/// Microseconds as milliseconds with three decimals, as `{ms}.{us:03}`.
fn milliseconds(b: &mut Vec<u8>, us: u64) {
    let mut n = itoa::Buffer::new();
    b.extend_from_slice(n.format(us / 1000).as_bytes());
    b.push(b'.');
    zero_padded(b, us % 1000, 3);
}

/// The caller as the line writes it: the id, or `-`.
fn caller(b: &mut Vec<u8>, id: Option<i64>) {
    match id {
        Some(id) => b.extend_from_slice(itoa::Buffer::new().format(id).as_bytes()),
        None => b.push(b'-'),
    }
}

/// The address as `IpAddr`'s `Display` writes it; IPv4 by hand, IPv6 (rarer, and with its
/// shortening rules) through `Display`.
fn address(b: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    b.push(b'.');
                }
                b.extend_from_slice(n.format(octet).as_bytes());
            }
        }
        // Writing to a `Vec` cannot fail.
        IpAddr::V6(_) => {
            let _ = write!(b, "{ip}");
        }
    }
}

/// `s` as a JSON string. Methods are HTTP tokens and routes are the server's own templates, so
/// this escapes nothing in practice; it is here so that no value can break the line.
fn json_string(b: &mut Vec<u8>, s: &str) {
    // Serialising a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *b, s);
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time, as `tracing_subscriber` writes it.
fn date_time(second: u64) -> [u8; 19] {
    let at = i64::try_from(second)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut out = [0u8; 19];
    let mut w = &mut out[..];
    // 19 bytes exactly for years 0–9999, which `from_unix_timestamp` keeps to.
    let _ = write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    out
}

/// The caller as the line writes it: the id, or `-`.
struct Caller(Option<i64>);

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fields() -> Fields<'static> {
        Fields {
            method: "GET",
            route: "/api/v1/attachments/{id}",
            status: 200,
            bytes: 312,
            duration_us: 2481,
            caller: Some(4817298374612),
            client: "203.0.113.7".parse().unwrap(),
            request_id: "9f2c4e0a",
        }
    }

    fn formatted(format: Format, f: &Fields<'_>, at: SystemTime) -> String {
        let mut line = Line {
            bytes: Vec::new(),
            second: None,
            date_time: [0; 19],
        };
        line.format(format, f, at);
        String::from_utf8(line.bytes).unwrap()
    }

    #[test]
    fn text_lines_are_tracings_default_format() {
        // 2026-12-02T04:10:11.123456Z
        let at = UNIX_EPOCH + Duration::new(1_796_184_611, 123_456_789);
        assert_eq!(
            formatted(Format::Text, &fields(), at),
            "2026-12-02T04:10:11.123456Z  INFO hangar::access: method=GET \
             route=/api/v1/attachments/{id} status=200 bytes=312 duration_ms=2.481 \
             caller=4817298374612 client=203.0.113.7 request_id=9f2c4e0a\n"
        );
        let anonymous = Fields {
            caller: None,
            duration_us: 50,
            client: "::1".parse().unwrap(),
            ..fields()
        };
        let line = formatted(Format::Text, &anonymous, UNIX_EPOCH);
        assert!(
            line.starts_with("1970-01-01T00:00:00.000000Z  INFO hangar::access: "),
            "{line}"
        );
        assert!(
            line.contains(" duration_ms=0.050 caller=- client=::1 "),
            "{line}"
        );
    }

    #[test]
    fn numbers_and_addresses_are_written_as_display_writes_them() {
        let at = UNIX_EPOCH + Duration::new(1_796_184_611, 7_000);
        for (client, caller, us, bytes) in [
            ("0.0.0.0", Some(0), 0, 0),
            ("255.255.255.255", Some(-7), 999, u64::MAX),
            ("10.0.12.1", Some(i64::MAX), 1_000, 1),
            ("2001:db8::1", None, 1_234_567, 4096),
            ("::ffff:192.0.2.1", Some(i64::MIN), 100_000_000_001, 10),
        ] {
            let f = Fields {
                client: client.parse().unwrap(),
                caller,
                duration_us: us,
                bytes,
                ..fields()
            };
            let caller = caller.map_or("-".to_string(), |c| c.to_string());
            let expected = format!(
                "2026-12-02T04:10:11.000007Z  INFO hangar::access: method=GET \
                 route=/api/v1/attachments/{{id}} status=200 bytes={bytes} duration_ms={}.{:03} \
                 caller={caller} client={} request_id=9f2c4e0a\n",
                us / 1000,
                us % 1000,
                f.client,
            );
            assert_eq!(formatted(Format::Text, &f, at), expected);
            let json: serde_json::Value =
                serde_json::from_str(&formatted(Format::Json, &f, at)).unwrap();
            assert_eq!(json["client"], f.client.to_string());
            assert_eq!(json["caller"], caller);
            assert_eq!(json["bytes"], bytes);
            assert_eq!(json["timestamp"], "2026-12-02T04:10:11.000007Z");
        }
    }

    #[test]
    fn json_lines_are_one_object_with_the_same_keys_in_order() {
        let at = UNIX_EPOCH + Duration::new(1_796_184_611, 123_456_789);
        let odd = Fields {
            route: "/a\"b\\c\n",
            ..fields()
        };
        let line = formatted(Format::Json, &odd, at);
        assert!(line.ends_with("}\n"), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = vec![
            "timestamp",
            "level",
            "method",
            "route",
            "status",
            "bytes",
            "duration_ms",
            "caller",
            "client",
            "request_id",
            "target",
        ];
        // serde_json's map is sorted unless `preserve_order`: compare as sets, and the order below.
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(value["timestamp"], "2026-12-02T04:10:11.123456Z");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["route"], "/a\"b\\c\n");
        assert_eq!(value["status"], 200);
        assert_eq!(value["bytes"], 312);
        assert_eq!(value["duration_ms"], 2.481);
        assert_eq!(value["caller"], "4817298374612");
        assert_eq!(value["client"], "203.0.113.7");
        assert_eq!(value["target"], TARGET);
        let order: Vec<usize> = [
            "\"timestamp\"",
            "\"level\"",
            "\"method\"",
            "\"route\"",
            "\"status\"",
            "\"bytes\"",
            "\"duration_ms\"",
            "\"caller\"",
            "\"client\"",
            "\"request_id\"",
            "\"target\"",
        ]
        .iter()
        .map(|k| line.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{line}");
    }

    #[test]
    fn the_date_is_formatted_once_per_second_and_stays_right_across_seconds() {
        let mut line = Line {
            bytes: Vec::new(),
            second: None,
            date_time: [0; 19],
        };
        let first = UNIX_EPOCH + Duration::new(1_796_184_659, 999_999_000);
        line.format(Format::Text, &fields(), first);
        assert!(line.bytes.starts_with(b"2026-12-02T04:10:59.999999Z"));
        line.format(Format::Text, &fields(), first + Duration::from_micros(1));
        assert!(line.bytes.starts_with(b"2026-12-02T04:11:00.000000Z"));
    }
}
