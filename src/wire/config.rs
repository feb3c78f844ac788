//! What a node offers and accepts on the wire: one [`WireConfig`] shared by all sessions.

use super::error::WireError;
use super::frame::{DEFAULT_MAX_FRAME_LEN, HARD_MAX_FRAME_LEN};
use super::handshake::{Features, Hello, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use crate::state::NodeId;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The wire settings of a node.
#[derive(Clone, Debug)]
pub struct WireConfig {
    /// The oldest protocol version we speak.
    pub version_min: u16,
    /// The newest protocol version we speak.
    pub version_max: u16,
    /// The optional features we offer (without [`Features::PLAINTEXT_TRANSPORT`], which
    /// `plaintext` controls).
    pub features: Features,
    /// Ask for an unencrypted transport after the authenticated handshake. The peer must
    /// ask too; otherwise the handshake is refused on both ends. For benchmarks and
    /// trusted links only.
    pub plaintext: bool,
    /// The largest frame payload we accept (and send): at most `HARD_MAX_FRAME_LEN`.
    pub max_frame_len: u32,
    /// The TCP port we listen on, told to peers in the Hello.
    pub listen_port: Option<u16>,
    /// If set, only these NodeIds may complete a handshake with us.
    pub allowlist: Option<Arc<BTreeSet<NodeId>>>,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            version_min: PROTOCOL_VERSION_MIN,
            version_max: PROTOCOL_VERSION_MAX,
            features: Features::ZSTD,
            plaintext: false,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            listen_port: None,
            allowlist: None,
        }
    }
}

impl WireConfig {
    /// Checks that the settings can work.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.version_min > self.version_max {
            return Err(WireError::Config("version_min is greater than version_max"));
        }
        if self.max_frame_len == 0 || self.max_frame_len > HARD_MAX_FRAME_LEN {
            return Err(WireError::Config("max_frame_len must be between 1 byte and 64 MiB"));
        }
        Ok(())
    }

    /// The Hello we send.
    pub fn hello(&self) -> Hello {
        let plaintext = if self.plaintext { Features::PLAINTEXT_TRANSPORT } else { Features::NONE };
        let offered = Features(self.features.0 & !Features::PLAINTEXT_TRANSPORT.0).union(plaintext);
        Hello {
            version_min: self.version_min,
            version_max: self.version_max,
            features: offered,
            max_frame_len: self.max_frame_len,
            listen_port: self.listen_port,
        }
    }

    /// Whether `peer` may complete a handshake with us.
    pub fn allows(&self, peer: &NodeId) -> bool {
        self.allowlist.as_ref().map_or(true, |list| list.contains(peer))
    }
}
