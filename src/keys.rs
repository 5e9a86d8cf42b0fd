//! The app's key material (`SECRET_KEYS`) and the one sealing scheme built on it: AES-256-GCM,
//! with a separate key derived (HKDF-SHA256) for each purpose, so the key that seals a pending
//! sign-in cookie can never open a stored token, and the other way round.
//!
//! `SECRET_KEYS` is a comma-separated list, newest first: the newest seals, every listed key
//! opens. To rotate, put a new key in front, and drop the old one once nothing it sealed is alive
//! (pending sign-ins live 10 minutes; a token sealed at sign-in can live until
//! `SESSION_MAX_MINUTES` + `SESSION_IDLE_MINUTES` + a minute, unless a refresh re-sealed it).
//!
//! Why not the `cookie` crate's private jar: it takes one key, has no key id to rotate with, and
//! seals cookies only; tokens at rest need the same construction, so both use this one.
//!
//! A sealed value is `base64url(key id ‖ nonce ‖ ciphertext+tag)`. The key id (4 bytes, derived
//! from the key, revealing nothing of it) picks the key to open with, so an old key costs no trial
//! decryption. The associated data binds a value to where it belongs (a cookie's name, a token's
//! session), so a sealed value copied elsewhere does not open.

use std::fmt;

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use hkdf::Hkdf;
use sha2::Sha256;

/// The least key material accepted, in bytes: AES-256's own key length.
pub const MIN_KEY_BYTES: usize = 32;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;

/// What a sealed value is for; each purpose has its own derived key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The pending sign-in cookie (`state`, PKCE verifier, `next`).
    SignInCookie,
    /// A session's LMS token (access and refresh) in the database.
    Token,
    /// A session's record in the database: the account, the CSRF token, the sign-in time.
    SessionRecord,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Self::SignInCookie => b"profiles/v1/sign-in-cookie",
            Self::Token => b"profiles/v1/token",
            Self::SessionRecord => b"profiles/v1/session-record",
        }
    }
}

struct Key {
    id: [u8; KEY_ID_LEN],
    sign_in_cookie: Aes256Gcm,
    token: Aes256Gcm,
    session_record: Aes256Gcm,
}

impl Key {
    fn derive(material: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"profiles SECRET_KEYS"), material);
        let derive = |info: &[u8]| {
            let mut okm = [0u8; 32];
            #[expect(clippy::expect_used, reason = "32 bytes is far below HKDF's limit")]
            hkdf.expand(info, &mut okm).expect("valid HKDF length");
            okm
        };
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&derive(b"profiles/v1/key-id")[..KEY_ID_LEN]);
        let cipher = |purpose: Purpose| Aes256Gcm::new(&derive(purpose.info()).into());
        Self {
            id,
            sign_in_cookie: cipher(Purpose::SignInCookie),
            token: cipher(Purpose::Token),
            session_record: cipher(Purpose::SessionRecord),
        }
    }

    fn cipher(&self, purpose: Purpose) -> &Aes256Gcm {
        match purpose {
            Purpose::SignInCookie => &self.sign_in_cookie,
            Purpose::Token => &self.token,
            Purpose::SessionRecord => &self.session_record,
        }
    }
}

/// The keys from `SECRET_KEYS`, newest first. `Debug` shows only how many there are.
#[derive(Clone)]
pub struct KeyRing {
    keys: std::sync::Arc<[Key]>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({} keys, redacted)", self.keys.len())
    }
}

impl KeyRing {
    /// Parses `SECRET_KEYS`: base64 keys of at least 32 bytes each, separated by commas.
    /// The error says what is wrong without quoting any key.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, text) in list.split(',').map(str::trim).enumerate() {
            let position = i + 1;
            let material = STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| format!("key {position} is not base64"))?;
            if material.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "key {position} has {} bytes; each needs at least {MIN_KEY_BYTES}",
                    material.len()
                ));
            }
            keys.push(Key::derive(&material));
        }
        Ok(Self { keys: keys.into() })
    }

    /// A fresh random key in `SECRET_KEYS` form (what `openssl rand -base64 32` prints).
    pub fn generate_key() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// Seals `plaintext` with the newest key, bound to `aad`.
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8], aad: &[u8]) -> String {
        let key = &self.keys[0];
        // rand's thread generator is a CSPRNG seeded from the OS: a random 96-bit nonce without a
        // system call per seal (at 2^32 seals per key the collision odds stay below 2^-32).
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        #[expect(
            clippy::expect_used,
            reason = "AES-GCM fails only past 64 GiB of plaintext"
        )]
        let sealed = key
            .cipher(purpose)
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("in-memory AES-GCM encryption");
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.id);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value [`seal`](Self::seal) made with any key of the ring, for the same purpose
    /// and `aad`; `None` for anything else (tampered, truncated, another key, another place).
    pub fn open(&self, purpose: Purpose, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < KEY_ID_LEN + NONCE_LEN {
            return None;
        }
        let (id, rest) = bytes.split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.id == id)?;
        key.cipher(purpose)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

/// Lower-case hexadecimal, for digests in names and keys (without `format!` per byte, which
/// showed in the request profile).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&str]) -> KeyRing {
        KeyRing::parse(&keys.join(",")).expect("valid keys")
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_and_place() {
        let key = KeyRing::generate_key();
        let keys = ring(&[&key]);
        let sealed = keys.seal(Purpose::Token, b"refresh-me", b"session-1");
        assert!(!sealed.contains("refresh-me"));
        assert_eq!(
            keys.open(Purpose::Token, &sealed, b"session-1").as_deref(),
            Some(&b"refresh-me"[..])
        );
        assert_eq!(keys.open(Purpose::Token, &sealed, b"session-2"), None);
        assert_eq!(
            keys.open(Purpose::SignInCookie, &sealed, b"session-1"),
            None
        );
    }

    #[test]
    fn a_tampered_or_truncated_value_does_not_open() {
        let keys = ring(&[&KeyRing::generate_key()]);
        let sealed = keys.seal(Purpose::SignInCookie, b"state", b"name");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(keys.open(Purpose::SignInCookie, &tampered, b"name"), None);
        assert_eq!(
            keys.open(Purpose::SignInCookie, &sealed[..10], b"name"),
            None
        );
        assert_eq!(
            keys.open(Purpose::SignInCookie, "not base64!", b"name"),
            None
        );
    }

    #[test]
    fn after_a_rotation_old_values_still_open_and_new_ones_use_the_new_key() {
        let (old, new) = (KeyRing::generate_key(), KeyRing::generate_key());
        let before = ring(&[&old]);
        let sealed_before = before.seal(Purpose::Token, b"t", b"a");
        let after = ring(&[&new, &old]);
        assert_eq!(
            after.open(Purpose::Token, &sealed_before, b"a").as_deref(),
            Some(&b"t"[..])
        );
        let sealed_after = after.seal(Purpose::Token, b"t", b"a");
        assert_eq!(before.open(Purpose::Token, &sealed_after, b"a"), None);
        assert!(
            ring(&[&new])
                .open(Purpose::Token, &sealed_after, b"a")
                .is_some()
        );
    }

    #[test]
    fn short_or_malformed_keys_are_refused_without_quoting_them() {
        let short = STANDARD.encode([7u8; 16]);
        let err = KeyRing::parse(&short).expect_err("too short");
        assert!(err.contains("16 bytes"), "{err}");
        assert!(!err.contains(&short));
        let err = KeyRing::parse(&format!("{},%%%", KeyRing::generate_key())).expect_err("bad");
        assert_eq!(err, "key 2 is not base64");
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0, 9, 10, 255]), "00090aff");
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let key = KeyRing::generate_key();
        let debug = format!("{:?}", ring(&[&key]));
        assert_eq!(debug, "KeyRing(1 keys, redacted)");
    }
}
