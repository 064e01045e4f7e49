//! The cluster keyring and packet sealing (ChaCha20-Poly1305).
//!
//! One key is primary and seals everything this node sends; every installed
//! key is tried when opening, so a cluster rotates keys without a split:
//! install the new key everywhere, make it primary everywhere, then remove
//! the old one. A keyring with no keys sends and accepts plaintext only; a
//! keyring with keys never accepts plaintext.
//!
//! Sealed layout: `0x01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, with the first
//! byte as associated data. Plaintext layout: `0x00 ‖ payload`.
//!
//! ```
//! use nuvol_gossip::{Key, Keyring};
//! let key = Key::from_bytes([7; 32]);
//! let ring = Keyring::new(key.clone());
//! assert_eq!(Key::from_base64(&key.to_base64()).unwrap(), key);
//! assert_eq!(ring.keys().len(), 1);
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::Tag;
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use core::fmt;

/// Header byte of a plaintext packet.
pub const PLAIN: u8 = 0x00;
/// Header byte of a ChaCha20-Poly1305 sealed packet.
pub const SEALED: u8 = 0x01;
/// Bytes sealing adds to a payload: header, nonce and tag.
pub const SEAL_OVERHEAD: usize = 1 + 12 + 16;

/// A 256-bit cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, only its fingerprint.
        write!(f, "Key({})", self.fingerprint())
    }
}

/// Why a key or keyring operation was refused; the keyring is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not 32 bytes of standard base64.
    BadEncoding,
    /// The key is not installed.
    NotInstalled,
    /// The primary key cannot be removed; make another key primary first.
    IsPrimary,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::BadEncoding => "a key is 32 bytes in standard base64 (44 characters)",
            KeyError::NotInstalled => "that key is not installed",
            KeyError::IsPrimary => "the primary key cannot be removed; use another key first",
        })
    }
}

/// Why a packet could not be opened. The packet is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Empty, or shorter than the sealing overhead.
    Truncated,
    /// Unknown header byte.
    UnknownFormat,
    /// Plaintext arrived while keys are installed, or sealed while none are.
    WrongMode,
    /// No installed key opens it (wrong key, or tampered).
    NoKey,
}

impl Key {
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parse standard base64 (with or without padding) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Key, KeyError> {
        let bytes = base64_decode(text.trim()).ok_or(KeyError::BadEncoding)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadEncoding)?;
        Ok(Key(arr))
    }

    pub fn to_base64(&self) -> String {
        base64_encode(&self.0)
    }

    /// Eight hex digits that name the key without revealing it: the start of
    /// the Poly1305 tag of an empty message under a fixed nonce.
    pub fn fingerprint(&self) -> String {
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let tag = cipher
            .encrypt(
                Nonce::from_slice(&[0xff; 12]),
                Payload {
                    msg: &[],
                    aad: b"nuvol key fingerprint",
                },
            )
            .unwrap_or_default();
        let mut s = String::with_capacity(8);
        for b in tag.iter().take(4) {
            let _ = fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
        }
        s
    }
}

/// The installed keys, primary first.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A keyring sealing with `primary`.
    pub fn new(primary: Key) -> Keyring {
        Keyring {
            keys: alloc::vec![primary],
        }
    }

    /// No keys: packets travel in plaintext (development only).
    pub fn plaintext() -> Keyring {
        Keyring { keys: Vec::new() }
    }

    /// Installed keys; the first is the primary.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn primary(&self) -> Option<&Key> {
        self.keys.first()
    }

    pub fn is_encrypted(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Add a key for receiving. Installing a key into a plaintext keyring
    /// makes it primary (the node starts sealing). Installing twice is a no-op.
    pub fn install(&mut self, key: Key) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Make an installed key the one used for sending.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyError> {
        let pos = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyError::NotInstalled)?;
        let k = self.keys.remove(pos);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Remove a key that is not the primary.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyError> {
        let pos = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyError::NotInstalled)?;
        if pos == 0 {
            return Err(KeyError::IsPrimary);
        }
        self.keys.remove(pos);
        Ok(())
    }

    /// Seal `payload` under the primary key (or frame it as plaintext).
    pub fn seal(&self, nonce: [u8; 12], payload: &[u8]) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            let mut out = Vec::with_capacity(payload.len() + 1);
            out.push(PLAIN);
            out.extend_from_slice(payload);
            return out;
        };
        let cipher = ChaCha20Poly1305::new((&key.0).into());
        let mut out = Vec::with_capacity(payload.len() + SEAL_OVERHEAD);
        out.push(SEALED);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(payload);
        // ChaCha20-Poly1305 only fails on messages beyond 256 GiB.
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[SEALED], &mut out[13..])
            .unwrap_or_default();
        out.extend_from_slice(&tag);
        out
    }

    /// Open a packet with any installed key.
    pub fn open(&self, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&head, rest) = bytes.split_first().ok_or(OpenError::Truncated)?;
        match head {
            PLAIN if self.keys.is_empty() => Ok(rest.to_vec()),
            PLAIN => Err(OpenError::WrongMode),
            SEALED if self.keys.is_empty() => Err(OpenError::WrongMode),
            SEALED => {
                if rest.len() < 12 + 16 {
                    return Err(OpenError::Truncated);
                }
                let (nonce, sealed) = rest.split_at(12);
                let (ct, tag) = sealed.split_at(sealed.len() - 16);
                let tag = Tag::from_slice(tag);
                let mut buf = ct.to_vec();
                for key in &self.keys {
                    let cipher = ChaCha20Poly1305::new((&key.0).into());
                    // The tag is checked before decrypting, so a failed
                    // attempt leaves `buf` as it was for the next key.
                    if cipher
                        .decrypt_in_place_detached(
                            Nonce::from_slice(nonce),
                            &[SEALED],
                            &mut buf,
                            tag,
                        )
                        .is_ok()
                    {
                        return Ok(buf);
                    }
                }
                Err(OpenError::NoKey)
            }
            _ => Err(OpenError::UnknownFormat),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_packet_opens_with_any_installed_key() {
        let old = Key::from_bytes([1; 32]);
        let new = Key::from_bytes([2; 32]);
        let sender = Keyring::new(new.clone());
        let mut receiver = Keyring::new(old.clone());
        let sealed = sender.seal([9; 12], b"hello");
        assert_eq!(receiver.open(&sealed), Err(OpenError::NoKey));
        receiver.install(new.clone());
        assert_eq!(receiver.open(&sealed).unwrap(), b"hello");
        assert_eq!(receiver.remove(&old), Err(KeyError::IsPrimary));
        receiver.use_key(&new).unwrap();
        receiver.remove(&old).unwrap();
        assert_eq!(receiver.keys(), &[new][..]);
    }

    #[test]
    fn tampered_or_plaintext_packets_are_refused() {
        let ring = Keyring::new(Key::from_bytes([3; 32]));
        let mut sealed = ring.seal([0; 12], b"x");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(ring.open(&sealed), Err(OpenError::NoKey));
        assert_eq!(ring.open(&[PLAIN, 1, 2]), Err(OpenError::WrongMode));
        assert_eq!(ring.open(&[]), Err(OpenError::Truncated));
        assert_eq!(ring.open(&[SEALED, 1]), Err(OpenError::Truncated));
        assert_eq!(ring.open(&[7, 1]), Err(OpenError::UnknownFormat));
        assert_eq!(
            Keyring::plaintext().open(&sealed),
            Err(OpenError::WrongMode)
        );
    }

    #[test]
    fn base64_round_trips_and_rejects_wrong_lengths() {
        let k = Key::from_bytes(core::array::from_fn(|i| i as u8 * 7));
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        assert_eq!(Key::from_base64(&text).unwrap(), k);
        assert_eq!(Key::from_base64("AAAA"), Err(KeyError::BadEncoding));
        assert_eq!(Key::from_base64("!!!"), Err(KeyError::BadEncoding));
        assert_eq!(k.fingerprint().len(), 8);
        assert_ne!(k.fingerprint(), Key::from_bytes([0; 32]).fingerprint());
    }
}
