//! A node's long-term identity: an X25519 static key pair, the one Noise authenticates
//! with. Its public half is the node's [`NodeId`] (DESIGN.md §3).
//!
//! The secret lives in a file of exactly 32 raw bytes, mode 0600. On first start it is
//! generated with snow's random source and written atomically: into a fresh temporary
//! file created with mode 0600 (never a wider mode narrowed later), fsynced, then linked
//! into place without replacing a file another process wrote meanwhile, then the
//! directory is fsynced. A file that group or others can read is refused: a key that
//! may have leaked must be replaced by its owner, not silently used.

use crate::state::NodeId;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The length of a static secret key, and of the identity file.
pub const SECRET_LEN: usize = 32;

/// A static key pair. The secret never leaves this struct except into snow's builder.
#[derive(Clone)]
pub struct Identity {
    secret: [u8; SECRET_LEN],
    public: [u8; 32],
}

/// Why an identity file could not be loaded or created.
#[derive(Debug)]
pub enum IdentityError {
    /// Reading, writing or syncing failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The file is readable or writable by group or others.
    PermissionsTooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not exactly [`SECRET_LEN`] bytes.
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Its length (or the number of bytes read, capped at one more than expected).
        len: u64,
    },
    /// The path exists but is not a regular file.
    NotAFile(PathBuf),
    /// The key generator failed.
    Generate(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Io { path, source } => write!(f, "identity file {}: {source}", path.display()),
            IdentityError::PermissionsTooOpen { path, mode } => write!(
                f,
                "identity file {} has mode {:04o}: group and others must have no access; \
                 if the key may have leaked, delete the file to generate a new identity, \
                 otherwise run `chmod 600 {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            IdentityError::WrongLength { path, len } => write!(
                f,
                "identity file {} holds {len} bytes, not the {SECRET_LEN} of a static key: \
                 it is not an identity file or it is damaged; move it away to generate a new identity",
                path.display()
            ),
            IdentityError::NotAFile(path) => write!(f, "identity path {} is not a regular file", path.display()),
            IdentityError::Generate(why) => write!(f, "cannot generate an identity key: {why}"),
        }
    }
}

impl std::error::Error for IdentityError {}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Identity({:?})", self.node_id())
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.public == other.public && self.secret == other.secret
    }
}

impl Eq for Identity {}

impl Identity {
    /// The identity with this secret key (for tests and simulations, which derive it
    /// from a seed; X25519 clamps any 32 bytes into a valid scalar).
    pub fn from_secret(secret: [u8; SECRET_LEN]) -> Identity {
        let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).expect("snow always resolves Curve25519");
        dh.set(&secret);
        let mut public = [0u8; 32];
        public.copy_from_slice(dh.pubkey());
        Identity { secret, public }
    }

    /// A fresh identity from snow's random source (the operating system's).
    pub fn generate() -> Result<Identity, IdentityError> {
        let params = super::handshake::NOISE_PARAMS.parse().map_err(|e| IdentityError::Generate(format!("{e}")))?;
        let pair =
            snow::Builder::new(params).generate_keypair().map_err(|e| IdentityError::Generate(format!("{e}")))?;
        let secret: [u8; SECRET_LEN] =
            pair.private.as_slice().try_into().map_err(|_| IdentityError::Generate("wrong key length".into()))?;
        Ok(Identity::from_secret(secret))
    }

    /// The node's identity: its public key.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.public)
    }

    /// The secret key, for snow's builder.
    pub(crate) fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }

    /// Loads the identity at `path`, or generates one and stores it there on first start.
    pub fn load_or_generate(path: &Path) -> Result<Identity, IdentityError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Identity::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Identity::generate()?;
                match identity.store_new(path) {
                    Ok(()) => Ok(identity),
                    // Another process stored one first: use theirs, so both agree.
                    Err(IdentityError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                        Identity::load(path)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(source) => Err(IdentityError::Io { path: path.into(), source }),
        }
    }

    /// Loads the identity at `path`, refusing a file with group/other access or of the
    /// wrong length.
    pub fn load(path: &Path) -> Result<Identity, IdentityError> {
        let io_err = |source| IdentityError::Io { path: path.into(), source };
        let meta = fs::symlink_metadata(path).map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(IdentityError::NotAFile(path.into()));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(IdentityError::PermissionsTooOpen { path: path.into(), mode });
        }
        if meta.len() != SECRET_LEN as u64 {
            return Err(IdentityError::WrongLength { path: path.into(), len: meta.len() });
        }
        // Read at most one byte more than expected, so a file that grew meanwhile is
        // still refused without reading it whole.
        let mut bytes = Vec::with_capacity(SECRET_LEN + 1);
        fs::File::open(path).map_err(io_err)?.take(SECRET_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io_err)?;
        let secret: [u8; SECRET_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::WrongLength { path: path.into(), len: bytes.len() as u64 })?;
        Ok(Identity::from_secret(secret))
    }

    /// Writes the secret to `path`, which must not exist yet (AlreadyExists otherwise).
    pub fn store_new(&self, path: &Path) -> Result<(), IdentityError> {
        let io_err = |source| IdentityError::Io { path: path.into(), source };
        let tmp = temporary_path(path);
        let written = write_synced(&tmp, &self.secret).and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        written.map_err(io_err)?;
        sync_parent(path).map_err(io_err)
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    // Unique per process and per call, so concurrent first starts never share a file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    name.push(format!(".tmp-{}-{call}", std::process::id()));
    path.with_file_name(name)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bhsync-identity-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_node_id_is_the_public_key_and_depends_only_on_the_secret() {
        let a = Identity::from_secret([7; 32]);
        assert_eq!(a, Identity::from_secret([7; 32]));
        assert_ne!(a.node_id(), Identity::from_secret([8; 32]).node_id());
        assert_ne!(a.node_id().0, [7; 32], "the public key is derived, not the secret");
    }

    #[test]
    fn an_identity_is_created_0600_and_reloads_equal() {
        let dir = scratch_dir("create");
        let path = dir.join("node.key");
        let first = Identity::load_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::metadata(&path).unwrap().len(), 32);
        assert_eq!(Identity::load_or_generate(&path).unwrap(), first);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "the temporary file is gone");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_readable_by_others_is_refused_with_the_fix_in_the_message() {
        let dir = scratch_dir("open");
        let path = dir.join("node.key");
        Identity::load_or_generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_generate(&path).unwrap_err();
        assert!(matches!(err, IdentityError::PermissionsTooOpen { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(path.to_str().unwrap()) && text.contains("chmod 600"), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_the_wrong_length_is_refused() {
        let dir = scratch_dir("length");
        let path = dir.join("node.key");
        write_synced(&path, b"not a key").unwrap();
        let err = Identity::load_or_generate(&path).unwrap_err();
        assert!(matches!(err, IdentityError::WrongLength { len: 9, .. }), "{err}");
        assert!(err.to_string().contains(path.to_str().unwrap()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn storing_never_replaces_an_existing_identity() {
        let dir = scratch_dir("clobber");
        let path = dir.join("node.key");
        let first = Identity::load_or_generate(&path).unwrap();
        let err = Identity::from_secret([1; 32]).store_new(&path).unwrap_err();
        assert!(matches!(&err, IdentityError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists));
        assert_eq!(Identity::load(&path).unwrap(), first);
        fs::remove_dir_all(&dir).unwrap();
    }
}
