//! Rules of the Applications platform that need no HTTP and no SQL: the rights catalogue, permission
//! contexts, which right an event needs, webhook payload templates, and GPG/SSH public-key parsing.

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a right lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The rights an application can be granted, by the code they are known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RightCode {
    ViewMessages,
    PostMessages,
    ViewIssues,
    CreateIssues,
    ReadFiles,
    WriteFiles,
    ViewAttachments,
    ProvideUnfurls,
}

impl RightCode {
    /// The code as the API and the store write it.
    pub fn as_str(self) -> &'static str {
        self.right().code
    }

    pub fn parse(code: &str) -> Option<RightCode> {
        right(code).map(|r| r.id)
    }

    /// The right's entry in the catalogue.
    pub fn right(self) -> &'static Right {
        // The catalogue lists every code once, in the order of the enum (checked by a test).
        &RIGHTS[self as usize]
    }

    pub fn access(self) -> Access {
        self.right().access
    }
}

impl std::fmt::Display for RightCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A right an application can be granted, and the contexts it applies in.
pub struct Right {
    pub id: RightCode,
    pub code: &'static str,
    pub name: &'static str,
    /// Whether the right only reads, or changes something.
    pub access: Access,
    /// The context kinds (`global` is always allowed) in which the right means something.
    pub contexts: &'static [ContextKind],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextKind {
    Global,
    Project,
    Channel,
    Space,
}

/// The catalogue, in the order of `RightCode`.
pub const RIGHTS: &[Right] = &[
    Right {
        id: RightCode::ViewMessages,
        code: "Channel.ViewMessages",
        name: "Read messages",
        access: Access::Read,
        contexts: &[ContextKind::Channel],
    },
    Right {
        id: RightCode::PostMessages,
        code: "Channel.PostMessages",
        name: "Post messages",
        access: Access::Write,
        contexts: &[ContextKind::Channel],
    },
    Right {
        id: RightCode::ViewIssues,
        code: "Project.Issues.View",
        name: "View issues",
        access: Access::Read,
        contexts: &[ContextKind::Project],
    },
    Right {
        id: RightCode::CreateIssues,
        code: "Project.Issues.Create",
        name: "Create and update issues",
        access: Access::Write,
        contexts: &[ContextKind::Project],
    },
    Right {
        id: RightCode::ReadFiles,
        code: "Space.Files.Read",
        name: "Read workspace files",
        access: Access::Read,
        contexts: &[ContextKind::Space],
    },
    Right {
        id: RightCode::WriteFiles,
        code: "Space.Files.Write",
        name: "Write workspace files",
        access: Access::Write,
        contexts: &[ContextKind::Space],
    },
    Right {
        id: RightCode::ViewAttachments,
        code: "Attachments.View",
        name: "Observe attachments",
        access: Access::Read,
        contexts: &[],
    },
    Right {
        id: RightCode::ProvideUnfurls,
        code: "Unfurls.Provide",
        name: "Provide link previews",
        access: Access::Write,
        contexts: &[],
    },
];

pub fn right(code: &str) -> Option<&'static Right> {
    RIGHTS.iter().find(|r| r.code == code)
}

/// A permission context: `global`, `project:key:X`, `channel:id:N` or `space:id:S`, kept in that
/// canonical text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Context {
    pub kind: ContextKind,
    pub text: String,
}

impl Context {
    pub fn global() -> Self {
        Context {
            kind: ContextKind::Global,
            text: "global".into(),
        }
    }

    pub fn space(id: &str) -> Self {
        Context {
            kind: ContextKind::Space,
            text: format!("space:id:{id}"),
        }
    }

    pub fn channel(id: i64) -> Self {
        Context {
            kind: ContextKind::Channel,
            text: format!("channel:id:{id}"),
        }
    }

    pub fn project(key: &str) -> Self {
        Context {
            kind: ContextKind::Project,
            text: format!("project:key:{key}"),
        }
    }

    pub fn parse(s: &str) -> Option<Context> {
        let ok_tail =
            |t: &str, f: fn(u8) -> bool| !t.is_empty() && t.len() <= 64 && t.bytes().all(f);
        let kind = if s == "global" {
            ContextKind::Global
        } else if let Some(k) = s.strip_prefix("project:key:") {
            if !ok_tail(k, |b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'
            }) {
                return None;
            }
            ContextKind::Project
        } else if let Some(n) = s.strip_prefix("channel:id:") {
            if !ok_tail(n, |b| b.is_ascii_digit()) || n.starts_with('0') {
                return None;
            }
            ContextKind::Channel
        } else if let Some(id) = s.strip_prefix("space:id:") {
            if !crate::ids::valid_space_id(id) {
                return None;
            }
            ContextKind::Space
        } else {
            return None;
        };
        Some(Context {
            kind,
            text: s.to_string(),
        })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ContextKind::Global => "global",
            ContextKind::Project => "project",
            ContextKind::Channel => "channel",
            ContextKind::Space => "space",
        }
    }

    /// Whether `right` can be requested or granted here.
    pub fn admits(&self, right: &Right) -> bool {
        self.kind == ContextKind::Global || right.contexts.contains(&self.kind)
    }
}

/// Event types a webhook can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "Attachment.Created",
    "Attachment.Deleted",
    "Attachment.Quarantined",
    "StorageFile.Created",
    "StorageFile.Updated",
    "StorageFile.Deleted",
    "StorageFile.Moved",
    "StorageFile.Quarantined",
    "ChatMessage.Created",
    "ChatMessage.Deleted",
    "Issue.Created",
    "Issue.Updated",
    "Issue.Deleted",
];

/// The right an application needs to receive an event of this type.
pub fn event_right(event_type: &str) -> Option<RightCode> {
    Some(match event_type.split('.').next()? {
        "Attachment" => RightCode::ViewAttachments,
        "StorageFile" => RightCode::ReadFiles,
        "ChatMessage" => RightCode::ViewMessages,
        "Issue" => RightCode::ViewIssues,
        _ => return None,
    })
}

/// Largest body a payload template may produce.
pub const TEMPLATE_OUTPUT_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("`{{{{` at byte {0} is never closed by `}}}}`")]
    Unclosed(usize),
    #[error("`{0}` is not a variable name (letters, digits, `_`, `-` and `.`)")]
    BadVariable(String),
    #[error("a template ends in a lone backslash")]
    TrailingBackslash,
    #[error("the rendered body is larger than {TEMPLATE_OUTPUT_LIMIT} bytes")]
    TooLarge,
}

enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Var(&'a str),
}

/// Splits a template into text and `{{variable}}` references. `\{` is a literal `{` and `\\` a
/// literal backslash; any other backslash stays as it is.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut text = String::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => match bytes.get(i + 1) {
                Some(b'{') => {
                    text.push('{');
                    i += 2;
                }
                Some(b'\\') => {
                    text.push('\\');
                    i += 2;
                }
                Some(_) => {
                    text.push('\\');
                    i += 1;
                }
                None => return Err(TemplateError::TrailingBackslash),
            },
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                let rest = &template[i + 2..];
                let end = rest.find("}}").ok_or(TemplateError::Unclosed(i))?;
                let name = rest[..end].trim();
                if name.is_empty()
                    || name.len() > 200
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                {
                    return Err(TemplateError::BadVariable(rest[..end].to_string()));
                }
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text).into()));
                }
                out.push(Piece::Var(name));
                i += 2 + end + 2;
            }
            _ => {
                // Copy a whole UTF-8 character.
                let ch = template[i..].chars().next().unwrap_or('\u{fffd}');
                text.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text.into()));
    }
    Ok(out)
}

/// Checks a template's syntax without rendering it.
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    pieces(template).map(|_| ())
}

/// Renders a template against a payload. A variable is a dotted path into the payload; strings are
/// inserted JSON-escaped (without quotes, so a template writes `"{{message.text}}"`), other values
/// as compact JSON, unknown paths as nothing.
pub fn render_template(template: &str, payload: &Value) -> Result<String, TemplateError> {
    let mut out = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Var(path) => {
                let mut v = Some(payload);
                for part in path.split('.') {
                    v = v.and_then(|v| match v {
                        Value::Object(m) => m.get(part),
                        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
                        _ => None,
                    });
                }
                match v {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => {
                        let quoted = Value::String(s.clone()).to_string();
                        out.push_str(&quoted[1..quoted.len() - 1]);
                    }
                    Some(other) => out.push_str(&other.to_string()),
                }
            }
        }
        if out.len() > TEMPLATE_OUTPUT_LIMIT {
            return Err(TemplateError::TooLarge);
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not an ASCII-armored OpenPGP public key block")]
    NotArmored,
    #[error("the key block is not valid base64")]
    BadBase64,
    #[error("the key block's checksum does not match")]
    BadChecksum,
    #[error("the key block does not start with a version 4 public-key packet")]
    BadPacket,
    #[error("not an OpenSSH public key (`TYPE BASE64 [comment]`)")]
    NotSsh,
    #[error("the key's type `{0}` is not supported")]
    UnsupportedType(String),
}

/// The OpenPGP v4 fingerprint (40 uppercase hex digits) of an armored public key block: SHA-1 over
/// 0x99, the two-byte length and the body of the first public-key packet (RFC 4880 §12.2).
/// Written by hand: the OpenPGP crates pull in a whole cryptographic stack for this one hash.
pub fn gpg_fingerprint(armored: &str) -> Result<String, KeyError> {
    let text = armored.trim();
    let body = text
        .strip_prefix("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        .and_then(|rest| rest.split("-----END PGP PUBLIC KEY BLOCK-----").next())
        .filter(|_| text.ends_with("-----END PGP PUBLIC KEY BLOCK-----"))
        .ok_or(KeyError::NotArmored)?;
    // Armor headers end at the first blank line; without headers the data starts at once.
    let mut lines: Vec<&str> = body.lines().map(str::trim).collect();
    while lines.first() == Some(&"") {
        lines.remove(0);
    }
    if lines.iter().any(|l| l.contains(": ")) {
        let blank = lines
            .iter()
            .position(|l| l.is_empty())
            .ok_or(KeyError::NotArmored)?;
        lines.drain(..=blank);
    }
    let mut data = String::new();
    let mut crc = None;
    for line in lines.iter().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix('=') {
            crc = Some(c);
        } else {
            data.push_str(line);
        }
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(&data).map_err(|_| KeyError::BadBase64)?;
    if let Some(c) = crc {
        let want = engine.decode(c).map_err(|_| KeyError::BadBase64)?;
        let got = crc24(&bytes).to_be_bytes();
        if want.as_slice() != &got[1..] {
            return Err(KeyError::BadChecksum);
        }
    }
    let (tag, body) = first_packet(&bytes).ok_or(KeyError::BadPacket)?;
    if tag != 6 || body.first() != Some(&4) || body.len() < 6 || body.len() > 0xFFFF {
        return Err(KeyError::BadPacket);
    }
    let mut h = sha1::Sha1::new();
    h.update([0x99, (body.len() >> 8) as u8, body.len() as u8]);
    h.update(body);
    Ok(hex::encode_upper(h.finalize()))
}

fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB704CE;
    for &b in data {
        crc ^= (b as u32) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x186_4CFB;
            }
        }
    }
    crc & 0xFF_FFFF
}

/// The tag and body of the first OpenPGP packet (old or new format, definite lengths only).
fn first_packet(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let head = *bytes.first()?;
    if head & 0x80 == 0 {
        return None;
    }
    let (tag, len, start): (u8, usize, usize) = if head & 0x40 != 0 {
        let tag = head & 0x3F;
        let b0 = *bytes.get(1)? as usize;
        match b0 {
            0..=191 => (tag, b0, 2),
            192..=223 => (tag, ((b0 - 192) << 8) + *bytes.get(2)? as usize + 192, 3),
            255 => {
                let l = bytes.get(2..6)?;
                (
                    tag,
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
                    6,
                )
            }
            _ => return None,
        }
    } else {
        let tag = (head >> 2) & 0x0F;
        match head & 3 {
            0 => (tag, *bytes.get(1)? as usize, 2),
            1 => (
                tag,
                u16::from_be_bytes([*bytes.get(1)?, *bytes.get(2)?]) as usize,
                3,
            ),
            2 => {
                let l = bytes.get(1..5)?;
                (
                    tag,
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
                    5,
                )
            }
            _ => return None,
        }
    };
    Some((tag, bytes.get(start..start.checked_add(len)?)?))
}

/// A parsed OpenSSH public key line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    pub key_type: String,
    /// `SHA256:` and unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: String,
}

const SSH_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

pub fn parse_ssh_key(line: &str) -> Result<SshKey, KeyError> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(KeyError::NotSsh);
    };
    let comment = parts.collect::<Vec<_>>().join(" ");
    if !SSH_TYPES.contains(&kind) {
        return Err(KeyError::UnsupportedType(kind.chars().take(64).collect()));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| KeyError::BadBase64)?;
    // The blob starts with the key type as an SSH string (u32 length, bytes), which must agree.
    let len = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .ok_or(KeyError::NotSsh)?;
    let inner = blob
        .get(4..4 + len.min(blob.len()))
        .ok_or(KeyError::NotSsh)?;
    if inner != kind.as_bytes() || blob.len() < 4 + len + 16 {
        return Err(KeyError::NotSsh);
    }
    let digest = Sha256::digest(&blob);
    Ok(SshKey {
        key_type: kind.to_string(),
        fingerprint: format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        ),
        comment,
    })
}

/// Links (http and https URLs) in a chat message's text, each with its host in lowercase.
pub fn links_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "<>\"'()[]".contains(c)) {
        let link = word.trim_end_matches(['.', ',', ';', '!', ':']);
        let Some(rest) = link
            .strip_prefix("https://")
            .or_else(|| link.strip_prefix("http://"))
        else {
            continue;
        };
        let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host_port
            .rsplit('@')
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !host.is_empty() && out.len() < 20 {
            out.push((link.to_string(), host));
        }
    }
    out
}

/// Whether `host` is `domain` or a subdomain of it.
pub fn host_matches(host: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches("*.");
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// A domain as an application may declare it for unfurling: a host name, optionally `*.`-prefixed.
pub fn valid_domain(d: &str) -> bool {
    let d = d.strip_prefix("*.").unwrap_or(d);
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_substitute_and_escape() {
        let p = json!({"message": {"text": "a \"quoted\"\nline", "id": 7}, "list": [1, 2]});
        assert_eq!(
            render_template(r#"{"t":"{{message.text}}","id":{{ message.id }}}"#, &p).unwrap(),
            r#"{"t":"a \"quoted\"\nline","id":7}"#
        );
        assert_eq!(render_template(r"\{{x}} \\ \n", &p).unwrap(), r"{{x}} \ \n");
        assert_eq!(
            render_template("{{list.1}}{{nothing.here}}", &p).unwrap(),
            "2"
        );
        assert_eq!(render_template("{{a", &p), Err(TemplateError::Unclosed(0)));
        assert!(matches!(
            render_template("{{a b}}", &p),
            Err(TemplateError::BadVariable(_))
        ));
        assert_eq!(
            render_template("x\\", &p),
            Err(TemplateError::TrailingBackslash)
        );
        let big = json!({"s": "x".repeat(40_000)});
        assert_eq!(
            render_template("{{s}}{{s}}", &big),
            Err(TemplateError::TooLarge)
        );
    }

    #[test]
    fn the_catalogue_follows_the_codes() {
        for (i, r) in RIGHTS.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{} out of order", r.code);
            assert_eq!(RightCode::parse(r.code), Some(r.id));
            assert_eq!(r.id.as_str(), r.code);
        }
        assert_eq!(RightCode::parse("Nope.Right"), None);
        assert_eq!(Context::space("s1").text, "space:id:s1");
        assert_eq!(
            Context::parse(&Context::channel(4).text),
            Some(Context::channel(4))
        );
        assert_eq!(
            Context::parse(&Context::project("P").text),
            Some(Context::project("P"))
        );
    }

    #[test]
    fn contexts_parse_strictly() {
        for ok in [
            "global",
            "project:key:MY-P",
            "channel:id:12",
            "space:id:space_a",
        ] {
            assert_eq!(Context::parse(ok).unwrap().text, ok);
        }
        for bad in [
            "",
            "project:key:",
            "channel:id:x",
            "channel:id:01",
            "space:id:a/b",
            "team:id:1",
        ] {
            assert!(Context::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ssh_keys_are_checked() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";
        let k = parse_ssh_key(key).unwrap();
        assert_eq!(k.key_type, "ssh-ed25519");
        assert!(k.fingerprint.starts_with("SHA256:"));
        assert_eq!(k.comment, "me@host");
        // Type in the line disagrees with the blob.
        assert!(parse_ssh_key(
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        )
        .is_err());
        assert!(parse_ssh_key("ssh-ed25519 !!!").is_err());
        assert!(parse_ssh_key("hello").is_err());
    }

    #[test]
    fn gpg_blocks_are_checked() {
        assert_eq!(gpg_fingerprint("nope"), Err(KeyError::NotArmored));
        // A minimal v4 Ed25519 public-key packet (tag 6, new format).
        let mut packet = vec![0xC6, 51, 4, 0, 0, 0, 0, 22, 9];
        packet.extend_from_slice(&[0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01]);
        packet.extend_from_slice(&[0x01, 0x07, 0x40]);
        packet.extend_from_slice(&[7u8; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&packet);
        let crc =
            base64::engine::general_purpose::STANDARD.encode(&crc24(&packet).to_be_bytes()[1..]);
        let block = format!("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{b64}\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----\n");
        let fp = gpg_fingerprint(&block).unwrap();
        assert_eq!(fp.len(), 40);
        let bad = block.replace(&format!("={crc}"), "=AAAA");
        assert_eq!(gpg_fingerprint(&bad), Err(KeyError::BadChecksum));
    }

    #[test]
    fn links_and_domains() {
        let l = links_in(
            "see https://Docs.Example.com/a?b, and http://x.io:8080/. or https://end.org.",
        );
        assert_eq!(l[2], ("https://end.org".into(), "end.org".into()));
        assert_eq!(
            l[0],
            (
                "https://Docs.Example.com/a?b".into(),
                "docs.example.com".into()
            )
        );
        assert_eq!(l[1].1, "x.io");
        assert!(host_matches("docs.example.com", "example.com"));
        assert!(!host_matches("badexample.com", "example.com"));
        assert!(valid_domain("*.example.com") && !valid_domain("exa mple.com"));
    }
}
