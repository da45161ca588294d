//! Secrets the server must be able to read back (client secrets, signing keys, webhook credentials)
//! are sealed with ChaCha20-Poly1305 under a key derived from the data dir's secret; outgoing payloads
//! are signed with HMAC-SHA256 (per-webhook keys) and Ed25519 (the server's key, published as JWKS).

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be opened (the server's secret key changed?)")]
pub struct SealError;

pub struct Secrets {
    cipher: ChaCha20Poly1305,
    signer: SigningKey,
}

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    // Hmac accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Secrets {
    pub fn new(master: &[u8; 32]) -> Self {
        let seal = derive(master, "hangar secrets sealing v1");
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&seal)),
            signer: SigningKey::from_bytes(&derive(master, "hangar ed25519 payload signing v1")),
        }
    }

    /// `v1.` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        // Encryption into a Vec fails only on a buffer the size of the address space.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("in-memory encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1.{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let raw = sealed
            .strip_prefix("v1.")
            .and_then(|b| B64.decode(b).ok())
            .filter(|r| r.len() >= 12 + 16)
            .ok_or(SealError)?;
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&raw[..12]), &raw[12..])
            .map_err(|_| SealError)?;
        String::from_utf8(plain).map_err(|_| SealError)
    }

    /// The key id of the Ed25519 key: the start of the SHA-256 of its public half.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.signer.verifying_key().as_bytes())[..8])
    }

    /// The JWKS document (RFC 7517 with RFC 8037's OKP keys) of the payload-signing key.
    pub fn jwks(&self) -> String {
        serde_json::json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.key_id(),
            "x": B64URL.encode(self.signer.verifying_key().as_bytes()),
        }]})
        .to_string()
    }

    /// Base64 of the Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.signer.sign(message).to_bytes())
    }
}

/// A new signing key: hex of 32 random bytes.
pub fn new_signing_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A new random secret of 256 bits, URL-safe.
pub fn new_secret() -> String {
    B64URL.encode(rand::random::<[u8; 32]>())
}

/// HMAC-SHA256 of `message` under a signing key given in hex (its bytes are the key).
pub fn hmac_sha256(key_hex: &str, message: &[u8]) -> Vec<u8> {
    let key = hex::decode(key_hex).unwrap_or_else(|_| key_hex.as_bytes().to_vec());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub fn base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Constant-time equality of two secrets.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.ct_eq(&b).into()
}
