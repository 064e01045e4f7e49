//! The agent's persistent state directory (`/etc/nuvol` on OpenWRT, `--state DIR`).
//!
//! Two small files, each replaced atomically (temp file, fsync, rename, fsync
//! dir) so a power cut or `kill -9` leaves the old or the new version:
//!
//! | file      | holds                                                        |
//! |-----------|--------------------------------------------------------------|
//! | `node`    | the gossip core's saved state: incarnation (so a restart refutes stale "dead" rumours), known peers (to rejoin without a seed), own catalog, tags, Lamport clocks |
//! | `keyring` | cluster keys installed at runtime, primary first             |
//!
//! `node` changes with every join, leave and refutation, too often for the
//! flash of a router: the agent keeps a copy in RAM beside its control
//! socket ([`volatile_dir`]: `/var/run/nuvol.volatile/` for the default
//! `/var/run/nuvol.sock`), written on each change and read first at start
//! (so restarts without a reboot lose nothing), and writes the state
//! directory at most hourly, after a boot, on an owner's publish/unpublish
//! and at stop (bench/flash_writes.py measures it).
//!
//! Each file is `NUVS`, a format version byte, a 4-byte big-endian body length,
//! a CRC-32 of the body, then the CBOR body. Flash on cheap routers does tear
//! writes and filesystems do lose renames, so every load checks all of that;
//! a file that fails is moved aside to `NAME.corrupt` and the agent starts
//! without it, with a warning naming the file — never a panic.

use std::io;
use std::path::{Path, PathBuf};

use minicbor::{Decode, Encode};

const MAGIC: &[u8; 4] = b"NUVS";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4 + 4;
/// No state file is anywhere near this; a bigger one is corrupt, not loaded.
const MAX_FILE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Keyring {
    /// 32-byte keys; the first is the primary (used for sending).
    #[n(0)]
    pub keys: Vec<Vec<u8>>,
}

/// The RAM copy of the state for the agent whose control socket is
/// `control`: `CONTROL` with its extension replaced by `.volatile`, so that
/// each agent on a machine has its own. `None` when it cannot be made or
/// would be the state directory itself.
pub fn volatile_dir(control: &Path, state_dir: &Path) -> Option<StateDir> {
    let dir = control.with_extension("volatile");
    (dir != state_dir)
        .then(|| StateDir::open(&dir).ok())
        .flatten()
}

/// The outcome of reading one state file.
#[derive(Debug)]
pub enum Loaded<T> {
    /// No such file: first start, or never written.
    Missing,
    Ok(T),
    /// Torn, truncated, or not ours; moved aside. The message says why.
    Corrupt(String),
}

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating, mode 0700) the state directory.
    pub fn open(dir: &Path) -> io::Result<StateDir> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Atomically replaces file `name` with `value`.
    pub fn save<T: Encode<()>>(&self, name: &str, value: &T) -> io::Result<()> {
        let body = minicbor::to_vec(value)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        self.save_raw(name, &body)
    }

    /// Atomically replaces file `name` with opaque `body` (already CBOR).
    pub fn save_raw(&self, name: &str, body: &[u8]) -> io::Result<()> {
        nuvol_uci::write_atomic_bytes(&self.dir.join(name), &seal(body))
    }

    /// Reads the checked body of file `name`; a corrupt one is moved aside.
    pub fn load_raw(&self, name: &str) -> Loaded<Vec<u8>> {
        let path = self.dir.join(name);
        let bytes = match read_bounded(&path) {
            Ok(Some(b)) => b,
            Ok(None) => return Loaded::Missing,
            Err(e) => return Loaded::Corrupt(format!("cannot read: {e}")),
        };
        match open(&bytes) {
            Ok(body) => Loaded::Ok(body.to_vec()),
            Err(why) => {
                self.move_aside(name);
                Loaded::Corrupt(why)
            }
        }
    }

    /// Renames a bad file to `NAME.corrupt`, for the owner to inspect.
    pub fn move_aside(&self, name: &str) {
        let _ = std::fs::rename(
            self.dir.join(name),
            self.dir.join(format!("{name}.corrupt")),
        );
    }

    /// Warns that state file `name` was unusable and is being ignored.
    pub fn warn_corrupt(&self, name: &str, why: &str) {
        crate::log::warn(&format!(
            "state file {} is corrupt ({why}); moved to {name}.corrupt, starting without it",
            self.dir.join(name).display()
        ));
    }

    /// Reads file `name`; a corrupt one is renamed to `NAME.corrupt`.
    pub fn load<T>(&self, name: &str) -> Loaded<T>
    where
        T: for<'b> Decode<'b, ()>,
    {
        match self.load_raw(name) {
            Loaded::Ok(body) => match minicbor::decode::<T>(&body) {
                Ok(v) => Loaded::Ok(v),
                Err(e) => {
                    self.move_aside(name);
                    Loaded::Corrupt(format!("undecodable contents: {e}"))
                }
            },
            Loaded::Missing => Loaded::Missing,
            Loaded::Corrupt(why) => Loaded::Corrupt(why),
        }
    }

    /// Loads a file, logging a warning (and falling back to the default) when
    /// it is corrupt. This is what the agent uses at start.
    pub fn load_or_warn<T>(&self, name: &str) -> T
    where
        T: for<'b> Decode<'b, ()> + Default,
    {
        match self.load(name) {
            Loaded::Ok(v) => v,
            Loaded::Missing => T::default(),
            Loaded::Corrupt(why) => {
                self.warn_corrupt(name, &why);
                T::default()
            }
        }
    }
}

fn read_bounded(path: &Path) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE as u64 + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks the header and checksum; returns the body.
fn open(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() > MAX_FILE {
        return Err(format!("over {MAX_FILE} bytes"));
    }
    if bytes.len() < HEADER {
        return Err(format!(
            "only {} bytes, shorter than its header",
            bytes.len()
        ));
    }
    if &bytes[..4] != MAGIC {
        return Err("not a nuvol state file".into());
    }
    if bytes[4] != VERSION {
        return Err(format!("format version {} is not {VERSION}", bytes[4]));
    }
    let len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    let crc = u32::from_be_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
    let body = &bytes[HEADER..];
    if body.len() != len {
        return Err(format!(
            "torn: header says {len} bytes, file has {}",
            body.len()
        ));
    }
    if crc32(body) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(body)
}

/// CRC-32 (IEEE, as in zlib), bitwise: state files are small and rare.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nuvol-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn saved_state_loads_back() {
        let d = tmp("roundtrip");
        let s = StateDir::open(&d).unwrap();
        let ring = Keyring {
            keys: vec![vec![1; 32], vec![2; 32]],
        };
        s.save("keyring", &ring).unwrap();
        assert!(matches!(s.load::<Keyring>("keyring"), Loaded::Ok(k) if k == ring));
        s.save_raw("node", b"opaque").unwrap();
        assert!(matches!(s.load_raw("node"), Loaded::Ok(b) if b == b"opaque"));
        assert!(matches!(s.load::<Keyring>("other"), Loaded::Missing));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn every_truncation_is_detected_and_moved_aside() {
        let d = tmp("torn");
        let s = StateDir::open(&d).unwrap();
        s.save_raw("node", b"some saved gossip state").unwrap();
        let full = std::fs::read(d.join("node")).unwrap();
        for cut in 0..full.len() {
            std::fs::write(d.join("node"), &full[..cut]).unwrap();
            match s.load_raw("node") {
                Loaded::Corrupt(_) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
            assert!(d.join("node.corrupt").exists());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn flipped_bit_is_detected() {
        let d = tmp("flip");
        let s = StateDir::open(&d).unwrap();
        s.save(
            "keyring",
            &Keyring {
                keys: vec![vec![9; 32]],
            },
        )
        .unwrap();
        let mut bytes = std::fs::read(d.join("keyring")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(d.join("keyring"), &bytes).unwrap();
        assert!(
            matches!(s.load::<Keyring>("keyring"), Loaded::Corrupt(w) if w.contains("checksum"))
        );
        // And the agent's path falls back to empty rather than failing.
        std::fs::write(d.join("keyring"), &bytes).unwrap();
        assert_eq!(s.load_or_warn::<Keyring>("keyring"), Keyring::default());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn foreign_file_is_not_ours() {
        let d = tmp("foreign");
        let s = StateDir::open(&d).unwrap();
        std::fs::write(d.join("keyring"), b"hello, I am a text file\n").unwrap();
        assert!(
            matches!(s.load::<Keyring>("keyring"), Loaded::Corrupt(w) if w.contains("not a nuvol"))
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
