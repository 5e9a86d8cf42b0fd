//! The app's key material (`SECRET_KEYS`) and the one sealing scheme built on it:
//! XChaCha20-Poly1305, with a separate key derived (HKDF-SHA256) for each purpose, so the key that
//! seals a pending sign-in cookie can never open a stored token, and the other way round.
//!
//! `SECRET_KEYS` is a comma-separated list, newest first: the newest seals, every listed key
//! opens. Replicas rotate in two phases, so that no replica ever meets a seal it cannot open
//! (docs/kubernetes.md): add the new key *last* everywhere; once every replica runs with it, put
//! it first; drop the old one once nothing it sealed is alive (pending sign-ins live 10 minutes; a
//! token sealed at sign-in can live until `SESSION_MAX_MINUTES` + `SESSION_IDLE_MINUTES` + a
//! minute, unless a refresh re-sealed it; a revocation kept for a retry, until it is confirmed).
//!
//! Why XChaCha20-Poly1305: its 192-bit nonces can be drawn at random for as long as a key lives.
//! AES-GCM's 96-bit random nonces are good for 2^32 seals per key (NIST SP 800-38D), and every
//! anonymous `GET /` seals a cookie: at 10,000 a second that budget is gone in five days. Values
//! sealed with AES-256-GCM before the change (`v1`, under key ids of their own) still open.
//!
//! Why not the `cookie` crate's private jar: it takes one key, has no key id to rotate with, and
//! seals cookies only; tokens at rest need the same construction, so both use this one.
//!
//! A sealed value is `base64url(key id ‖ nonce ‖ ciphertext+tag)`. The key id (4 bytes, derived
//! from the key, revealing nothing of it) picks the key to open with, so an old key costs no trial
//! decryption, and a value sealed under a key this process lacks is told apart from one altered
//! ([`Unopenable`]). The associated data binds a value to where it belongs (a cookie's name, a
//! token's session), so a sealed value copied elsewhere does not open.

use std::fmt;

use aes_gcm::Aes256Gcm;
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use hkdf::Hkdf;
use sha2::Sha256;

/// The least key material accepted, in bytes: the ciphers' own key length.
pub const MIN_KEY_BYTES: usize = 32;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
/// AES-GCM's nonce, in the values sealed before XChaCha20-Poly1305.
const V1_NONCE_LEN: usize = 12;

/// What a sealed value is for; each purpose has its own derived key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The pending sign-in cookie (`state`, PKCE verifier, `next`).
    SignInCookie,
    /// A session's LMS token (access and refresh) in the database.
    Token,
    /// A session's record in the database: the account, the CSRF token, the sign-in time.
    SessionRecord,
    /// A token kept for revocation because the LMS did not confirm it.
    Revocation,
    /// The email and name in the app's record of who signed in (`profiles`).
    Profile,
}

const PURPOSES: [Purpose; 5] = [
    Purpose::SignInCookie,
    Purpose::Token,
    Purpose::SessionRecord,
    Purpose::Revocation,
    Purpose::Profile,
];

impl Purpose {
    fn index(self) -> usize {
        self as usize
    }

    fn info(self) -> &'static [u8] {
        match self {
            Self::SignInCookie => b"profiles/v2/sign-in-cookie",
            Self::Token => b"profiles/v2/token",
            Self::SessionRecord => b"profiles/v2/session-record",
            Self::Revocation => b"profiles/v2/revocation",
            Self::Profile => b"profiles/v2/profile",
        }
    }

    /// The purposes AES-GCM sealed before, under their `v1` names; the others never had any.
    fn v1_info(self) -> Option<&'static [u8]> {
        match self {
            Self::SignInCookie => Some(b"profiles/v1/sign-in-cookie"),
            Self::Token => Some(b"profiles/v1/token"),
            Self::SessionRecord => Some(b"profiles/v1/session-record"),
            Self::Revocation | Self::Profile => None,
        }
    }
}

/// Why a sealed value did not open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unopenable {
    /// Sealed under a key `SECRET_KEYS` does not list here (its id, in hex): an operator error,
    /// such as a replica not yet given a new key, not an attack.
    #[error("sealed under key {0}, which SECRET_KEYS does not list here")]
    UnknownKey(String),
    /// Not a sealed value, or sealed for another purpose or place, or altered.
    #[error("altered, truncated, or sealed for another purpose or place")]
    Refused,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    ciphers: [XChaCha20Poly1305; PURPOSES.len()],
    v1_id: [u8; KEY_ID_LEN],
    v1_ciphers: [Option<Aes256Gcm>; PURPOSES.len()],
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
        let id_of = |info: &[u8]| {
            let mut id = [0u8; KEY_ID_LEN];
            id.copy_from_slice(&derive(info)[..KEY_ID_LEN]);
            id
        };
        Self {
            id: id_of(b"profiles/v2/key-id"),
            ciphers: PURPOSES.map(|p| XChaCha20Poly1305::new(&derive(p.info()).into())),
            v1_id: id_of(b"profiles/v1/key-id"),
            v1_ciphers: PURPOSES
                .map(|p| p.v1_info().map(|info| Aes256Gcm::new(&derive(info).into()))),
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

    /// The ids of the keys, newest (the sealing one) first, in hex: what a log line about a value
    /// that does not open names, so an operator can tell which key a replica lacks.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex(&k.id)).collect()
    }

    /// Whether every key of `other` is in this ring (by id).
    pub fn contains_all(&self, other: &KeyRing) -> bool {
        other
            .keys
            .iter()
            .all(|o| self.keys.iter().any(|k| k.id == o.id))
    }

    /// Seals `plaintext` with the newest key, bound to `aad`.
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8], aad: &[u8]) -> String {
        let key = &self.keys[0];
        // rand's thread generator is a CSPRNG seeded from the OS: a random 192-bit nonce without
        // a system call per seal, whose collision odds stay negligible however many seals a key
        // makes.
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        #[expect(
            clippy::expect_used,
            reason = "XChaCha20-Poly1305 fails only past 256 GiB of plaintext"
        )]
        let sealed = key.ciphers[purpose.index()]
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("in-memory XChaCha20-Poly1305 encryption");
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.id);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value [`seal`](Self::seal) made with any key of the ring, for the same purpose
    /// and `aad`; `None` for anything else (tampered, truncated, another key, another place).
    pub fn open(&self, purpose: Purpose, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        self.open_or_why(purpose, sealed, aad).ok()
    }

    /// [`open`](Self::open), saying why a value does not open: a key this ring lacks, or
    /// anything else.
    pub fn open_or_why(
        &self,
        purpose: Purpose,
        sealed: &str,
        aad: &[u8],
    ) -> Result<Vec<u8>, Unopenable> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Unopenable::Refused)?;
        if bytes.len() < KEY_ID_LEN {
            return Err(Unopenable::Refused);
        }
        let (id, rest) = bytes.split_at(KEY_ID_LEN);
        let payload = |msg| Payload { msg, aad };
        if let Some(key) = self.keys.iter().find(|k| k.id == id) {
            if rest.len() < NONCE_LEN {
                return Err(Unopenable::Refused);
            }
            let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
            return key.ciphers[purpose.index()]
                .decrypt(XNonce::from_slice(nonce), payload(ciphertext))
                .map_err(|_| Unopenable::Refused);
        }
        if let Some(key) = self.keys.iter().find(|k| k.v1_id == id) {
            let cipher = key.v1_ciphers[purpose.index()]
                .as_ref()
                .ok_or(Unopenable::Refused)?;
            if rest.len() < V1_NONCE_LEN {
                return Err(Unopenable::Refused);
            }
            let (nonce, ciphertext) = rest.split_at(V1_NONCE_LEN);
            return cipher
                .decrypt(aes_gcm::Nonce::from_slice(nonce), payload(ciphertext))
                .map_err(|_| Unopenable::Refused);
        }
        Err(Unopenable::UnknownKey(hex(id)))
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
    fn a_value_sealed_under_a_key_not_listed_names_that_key() {
        let (old, new) = (KeyRing::generate_key(), KeyRing::generate_key());
        let sealed = ring(&[&new, &old]).seal(Purpose::Token, b"t", b"a");
        let old_only = ring(&[&old]);
        let new_id = ring(&[&new]).ids().remove(0);
        assert_eq!(
            old_only.open_or_why(Purpose::Token, &sealed, b"a"),
            Err(Unopenable::UnknownKey(new_id))
        );
        assert_eq!(
            ring(&[&new]).open_or_why(Purpose::Token, &sealed, b"b"),
            Err(Unopenable::Refused),
            "a listed key that refuses is an alteration, not a missing key"
        );
    }

    #[test]
    fn values_sealed_with_aes_gcm_before_the_change_still_open() {
        use aes_gcm::aead::Aead as _;
        let key = KeyRing::generate_key();
        let keys = ring(&[&key]);
        let k = &keys.keys[0];
        let nonce = [7u8; V1_NONCE_LEN];
        let cipher = k.v1_ciphers[Purpose::Token.index()].as_ref().expect("v1");
        let ciphertext = cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: b"old",
                    aad: b"a",
                },
            )
            .expect("sealed");
        let v1 = URL_SAFE_NO_PAD.encode([&k.v1_id[..], &nonce, &ciphertext].concat());
        assert_eq!(
            keys.open(Purpose::Token, &v1, b"a").as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(keys.open(Purpose::SessionRecord, &v1, b"a"), None);
    }

    #[test]
    fn every_seal_draws_a_fresh_192_bit_nonce() {
        let keys = ring(&[&KeyRing::generate_key()]);
        let nonce_of = |sealed: String| {
            let bytes = URL_SAFE_NO_PAD.decode(sealed).expect("base64");
            bytes[KEY_ID_LEN..KEY_ID_LEN + NONCE_LEN].to_vec()
        };
        let a = nonce_of(keys.seal(Purpose::SignInCookie, b"same", b"same"));
        let b = nonce_of(keys.seal(Purpose::SignInCookie, b"same", b"same"));
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
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
