//! The handshake's payloads: what each end says about itself, and how the two are
//! reconciled into one [`Negotiated`] result.
//!
//! The handshake is `Noise_XX_25519_ChaChaPoly_BLAKE2s` (Noise spec rev. 34, §7.5):
//!
//! ```text
//! -> e                 payload: initiator Hello (readable, but bound by the transcript)
//! <- e, ee, s, es      payload: responder Hello (encrypted)
//! -> s, se             payload: empty
//! ```
//!
//! Both ends are authenticated by their static keys; the initiator's key travels
//! encrypted, so a passive observer does not learn who dials. The initiator's Hello goes
//! in the first message so that the responder can refuse an incompatible peer (and
//! garbage) before doing any Diffie-Hellman; it holds nothing secret, and tampering with
//! it breaks the handshake hash and so the next message. The prologue names the protocol,
//! so a peer of another protocol fails the handshake instead of misreading it.
//!
//! Negotiation is symmetric, so both ends reach the same result from the two Hellos: the
//! highest common version, the intersection of the features, the smaller of the two
//! frame limits. A plaintext transport needs both ends to ask for it (see
//! [`Features::PLAINTEXT_TRANSPORT`]).

use super::error::WireError;
use super::frame::{DEFAULT_MAX_FRAME_LEN, HARD_MAX_FRAME_LEN};
use bytemuck::{Pod, Zeroable};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Hashed into the handshake: a peer speaking anything else fails it.
pub const PROLOGUE: &[u8] = b"bhsync wire protocol";
/// The oldest protocol version this build speaks. Version 2 carried the whole node's
/// channels (membership, chain and time frames beside the core's `Data`, ADR 081);
/// version 3 carries pushes on the overlay's broadcast tree (`Gossip` frames), which a
/// version-2 node neither reads nor relays, so the handshake refuses older versions.
pub const PROTOCOL_VERSION_MIN: u16 = 3;
/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION_MAX: u16 = 3;
/// The longest handshake message we accept (ours are under 200 bytes).
pub const MAX_HANDSHAKE_MESSAGE: usize = 1024;
/// The most bytes a peer may send before its half of the handshake is complete: two
/// messages (XX has at most two per side) with their length prefixes.
pub const MAX_HANDSHAKE_BYTES: usize = 2 * (2 + MAX_HANDSHAKE_MESSAGE);
/// The encoded size of a Hello.
pub const HELLO_LEN: usize = std::mem::size_of::<HelloWire>();
/// A Hello may be followed by up to this many bytes that a newer peer adds; they are
/// ignored, so adding a field does not need a new protocol version.
pub const MAX_HELLO_EXTENSION: usize = 256;
const HELLO_MAGIC: [u8; 4] = *b"BHHI";
const HAS_LISTEN_PORT: u16 = 1;

/// Optional capabilities, as a bit set exchanged in the Hello.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct Features(pub u64);

impl Features {
    /// No features.
    pub const NONE: Features = Features(0);
    /// Transport frames travel unencrypted after an authenticated handshake. Both ends
    /// must ask for it; one asking and the other not is a refusal, never a fallback.
    /// Meant for benchmarks and trusted links, never the default.
    pub const PLAINTEXT_TRANSPORT: Features = Features(1 << 0);
    /// Data frames may carry zstd-compressed payloads (frame flag `FLAG_ZSTD`).
    pub const ZSTD: Features = Features(1 << 1);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// The features both sets have.
    pub fn intersection(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }

    /// Both sets together.
    pub fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }
}

/// What one end says about itself in the handshake.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello {
    /// The oldest protocol version it speaks.
    pub version_min: u16,
    /// The newest protocol version it speaks.
    pub version_max: u16,
    /// The features it offers.
    pub features: Features,
    /// The largest frame payload it accepts.
    pub max_frame_len: u32,
    /// The TCP port it listens on, so that the responder can dial it back later.
    pub listen_port: Option<u16>,
}

/// The result of the handshake that both ends agree on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Negotiated {
    /// The highest version both speak.
    pub version: u16,
    /// The features both offer.
    pub features: Features,
    /// The largest frame payload either end sends or accepts: the smaller limit.
    pub max_frame_len: u32,
    /// The port the peer listens on, if it said.
    pub peer_listen_port: Option<u16>,
}

impl Negotiated {
    /// Whether transport frames travel unencrypted.
    pub fn plaintext(&self) -> bool {
        self.features.contains(Features::PLAINTEXT_TRANSPORT)
    }
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct HelloWire {
    magic: [u8; 4],
    version_min: [u8; 2],
    version_max: [u8; 2],
    features: [u8; 8],
    max_frame_len: [u8; 4],
    listen_port: [u8; 2],
    flags: [u8; 2],
}

const _: () = assert!(HELLO_LEN == 24);

impl Hello {
    /// The encoded Hello.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let wire = HelloWire {
            magic: HELLO_MAGIC,
            version_min: self.version_min.to_le_bytes(),
            version_max: self.version_max.to_le_bytes(),
            features: self.features.0.to_le_bytes(),
            max_frame_len: self.max_frame_len.to_le_bytes(),
            listen_port: self.listen_port.unwrap_or(0).to_le_bytes(),
            flags: if self.listen_port.is_some() { HAS_LISTEN_PORT } else { 0 }.to_le_bytes(),
        };
        bytemuck::cast(wire)
    }

    /// Decodes a Hello, ignoring a bounded extension after it.
    pub fn decode(bytes: &[u8]) -> Result<Hello, WireError> {
        if bytes.len() < HELLO_LEN {
            return Err(WireError::BadHello("shorter than a hello"));
        }
        if bytes.len() > HELLO_LEN + MAX_HELLO_EXTENSION {
            return Err(WireError::BadHello("longer than a hello and its extension"));
        }
        let wire: HelloWire = bytemuck::pod_read_unaligned(&bytes[..HELLO_LEN]);
        if wire.magic != HELLO_MAGIC {
            return Err(WireError::BadHello("bad magic"));
        }
        let hello = Hello {
            version_min: u16::from_le_bytes(wire.version_min),
            version_max: u16::from_le_bytes(wire.version_max),
            features: Features(u64::from_le_bytes(wire.features)),
            max_frame_len: u32::from_le_bytes(wire.max_frame_len),
            listen_port: (u16::from_le_bytes(wire.flags) & HAS_LISTEN_PORT != 0)
                .then(|| u16::from_le_bytes(wire.listen_port)),
        };
        if hello.version_min > hello.version_max {
            return Err(WireError::BadHello("version range is empty"));
        }
        if hello.max_frame_len == 0 {
            return Err(WireError::BadHello("maximum frame length is zero"));
        }
        Ok(hello)
    }
}

impl Default for Hello {
    fn default() -> Self {
        Hello {
            version_min: PROTOCOL_VERSION_MIN,
            version_max: PROTOCOL_VERSION_MAX,
            features: Features::ZSTD,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            listen_port: None,
        }
    }
}

/// Reconciles our Hello with the peer's. Symmetric: `negotiate(a, b)` and
/// `negotiate(b, a)` agree (except for whose listen port is reported).
pub fn negotiate(ours: &Hello, theirs: &Hello) -> Result<Negotiated, WireError> {
    let version = ours.version_max.min(theirs.version_max);
    if version < ours.version_min || version < theirs.version_min {
        return Err(WireError::NoCommonVersion {
            ours: (ours.version_min, ours.version_max),
            theirs: (theirs.version_min, theirs.version_max),
        });
    }
    let ours_plaintext = ours.features.contains(Features::PLAINTEXT_TRANSPORT);
    if ours_plaintext != theirs.features.contains(Features::PLAINTEXT_TRANSPORT) {
        return Err(WireError::TransportMismatch { ours_plaintext });
    }
    Ok(Negotiated {
        version,
        features: ours.features.intersection(theirs.features),
        max_frame_len: ours.max_frame_len.min(theirs.max_frame_len).min(HARD_MAX_FRAME_LEN),
        peer_listen_port: theirs.listen_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(min: u16, max: u16, features: u64) -> Hello {
        Hello { version_min: min, version_max: max, features: Features(features), ..Hello::default() }
    }

    #[test]
    fn the_highest_common_version_and_the_feature_intersection_win() {
        let n = negotiate(&hello(1, 5, 0b110), &hello(3, 4, 0b010)).unwrap();
        assert_eq!((n.version, n.features), (4, Features(0b010)));
    }

    #[test]
    fn disjoint_versions_are_refused_from_both_sides() {
        assert!(matches!(negotiate(&hello(1, 2, 0), &hello(3, 4, 0)), Err(WireError::NoCommonVersion { .. })));
        assert!(matches!(negotiate(&hello(3, 4, 0), &hello(1, 2, 0)), Err(WireError::NoCommonVersion { .. })));
    }

    #[test]
    fn plaintext_needs_both_ends() {
        let plain = Features::PLAINTEXT_TRANSPORT.0;
        assert!(negotiate(&hello(1, 1, plain), &hello(1, 1, plain)).unwrap().plaintext());
        assert!(!negotiate(&hello(1, 1, 0), &hello(1, 1, 0)).unwrap().plaintext());
        assert!(matches!(
            negotiate(&hello(1, 1, plain), &hello(1, 1, 0)),
            Err(WireError::TransportMismatch { ours_plaintext: true })
        ));
    }

    #[test]
    fn a_hello_round_trips_and_tolerates_a_bounded_extension() {
        let ours = Hello { listen_port: Some(7000), ..hello(1, 3, 0b11) };
        let mut bytes = ours.to_bytes().to_vec();
        assert_eq!(Hello::decode(&bytes).unwrap(), ours);
        bytes.extend_from_slice(&[9; MAX_HELLO_EXTENSION]);
        assert_eq!(Hello::decode(&bytes).unwrap(), ours);
        bytes.push(0);
        assert!(Hello::decode(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn negotiation_is_symmetric(a in (0u16..6, 0u16..6, any::<u64>()), b in (0u16..6, 0u16..6, any::<u64>())) {
            let (x, y) = (hello(a.0.min(a.1), a.0.max(a.1), a.2), hello(b.0.min(b.1), b.0.max(b.1), b.2));
            match (negotiate(&x, &y), negotiate(&y, &x)) {
                (Ok(n), Ok(m)) => prop_assert_eq!((n.version, n.features, n.max_frame_len), (m.version, m.features, m.max_frame_len)),
                (Err(_), Err(_)) => {}
                (n, m) => prop_assert!(false, "asymmetric: {:?} vs {:?}", n, m),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_hello_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Hello::decode(&bytes);
        }
    }
}
