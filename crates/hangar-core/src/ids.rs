//! Random, non-enumerable identifiers and opaque tokens.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Largest id plus one: ids stay below 2^53 so that every JSON parser reads them exactly.
const ID_LIMIT: u64 = 1 << 53;

/// A random positive integer below 2^53 (never sequential, so ids cannot be enumerated).
pub fn random_id() -> i64 {
    rand::thread_rng().gen_range(1..ID_LIMIT) as i64
}

/// A unique key of 32 hex digits that sorts by creation time: the milliseconds since 1970 (12
/// digits), then 80 random bits. For rows written on every upload (events, blob pins) whose key is
/// only looked up, never guessed: a new row then lands at the end of its index, where the last
/// rows' page already is, instead of on a random page of its own that each commit writes to the
/// WAL (and each checkpoint again to the database file).
pub fn time_ordered_key() -> String {
    let ms = crate::now_ms().clamp(0, (1 << 48) - 1) as u64;
    let random: [u8; 10] = rand::thread_rng().gen();
    format!("{ms:012x}{}", hex::encode(random))
}

/// A space id such as `space_k3v9x2m1q8`.
pub fn random_space_id() -> String {
    format!("space_{}", random_alnum(12))
}

/// Lowercase letters and digits, for human-visible identifiers.
pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Prefix of every token Hangar issues, so that leaked tokens are recognisable by scanners.
pub const TOKEN_PREFIX: &str = "hgr_";

/// A new opaque token: `hgr_` followed by 256 random bits in hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// A new share-link token (SPEC §9.4): `hgr_` followed by 128 random bits in hex, short enough for
/// a URL one reads out.
pub fn new_share_token() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The only form in which a token is stored: its SHA-256 in hex.
pub fn token_hash(token: &str) -> String {
    // Every authenticated request hashes its token: `hex::encode`'s char-by-char collecting was
    // most of this function's time.
    let mut hex = vec![0u8; 64];
    // 32 bytes of digest always fill 64 hex digits.
    hex::encode_to_slice(Sha256::digest(token.as_bytes()), &mut hex)
        .expect("64 digits for 32 bytes");
    // Hex digits are ASCII.
    String::from_utf8(hex).expect("hex digits are ASCII")
}

/// A space id given by a client: letters, digits, `_` and `-`, 1 to 64 characters.
pub fn valid_space_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A username: 1 to 64 characters of letters, digits, `.`, `_` and `-`.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A project key such as `MY-PROJECT`: uppercase letters, digits and `-`, starting with a letter.
pub fn valid_project_key(key: &str) -> bool {
    key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_keys_are_hex_unique_and_sort_by_time() {
        let first = time_ordered_key();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let keys: Vec<String> = (0..1000).map(|_| time_ordered_key()).collect();
        for key in &keys {
            assert_eq!(key.len(), 32);
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(*key > first, "{key} sorts before {first}");
        }
        let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
    }

    #[test]
    fn ids_are_positive_and_json_safe() {
        for _ in 0..10_000 {
            let id = random_id();
            assert!(id > 0 && (id as u64) < ID_LIMIT);
        }
    }

    #[test]
    fn tokens_carry_the_prefix_and_256_bits() {
        let t = new_token();
        assert!(t.starts_with("hgr_"));
        assert_eq!(t.len(), 4 + 64);
        assert_ne!(t, new_token());
        assert_eq!(token_hash(&t).len(), 64);
        // The stored hashes are SHA-256 in lowercase hex: tokens made before keep working.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn identifier_rules() {
        assert!(valid_space_id("space_abc-1"));
        assert!(!valid_space_id("space/abc"));
        assert!(!valid_space_id(""));
        assert!(valid_username("alice.b-c_d"));
        assert!(!valid_username("al ice"));
        assert!(valid_project_key("MY-PROJECT2"));
        assert!(!valid_project_key("my-project"));
        assert!(!valid_project_key("1ABC"));
    }
}
