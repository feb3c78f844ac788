//! The wire decoders on arbitrary bytes: the frame decoder (an accepted frame re-encodes
//! to exactly the bytes it came from), the Hello decoder, and sessions fed the bytes at
//! three stages (fresh responder, initiator awaiting msg2, established in plaintext and
//! encrypted). Nothing may panic, and a session's buffers stay bounded.
#![no_main]

use bhsync::wire::handshake::Hello;
use bhsync::wire::{decode_frame, encode_frame, Identity, Session, WireConfig};
use libfuzzer_sys::fuzz_target;

fn drain(session: &mut Session) {
    for _ in 0..10_000 {
        match session.next_frame() {
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    let mut out = Vec::new();
    session.poll_transmit(&mut out);
}

fn established(plaintext: bool) -> Session {
    let cfg = WireConfig { plaintext, ..WireConfig::default() };
    let mut a = Session::initiator(&Identity::from_secret([1; 32]), &cfg).unwrap();
    let mut b = Session::responder(&Identity::from_secret([2; 32]), &cfg).unwrap();
    for _ in 0..2 {
        let mut wire = Vec::new();
        a.poll_transmit(&mut wire);
        b.handle_bytes(&wire).unwrap();
        wire.clear();
        b.poll_transmit(&mut wire);
        a.handle_bytes(&wire).unwrap();
    }
    assert!(b.is_established());
    b
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = decode_frame(data, 1 << 20) {
        let mut again = Vec::new();
        encode_frame(&mut again, frame.kind, frame.flags, frame.payload, 1 << 20).unwrap();
        assert_eq!(&again[..], &data[..used]);
    }
    let _ = Hello::decode(data);

    let cfg = WireConfig::default();
    let mut responder = Session::responder(&Identity::from_secret([2; 32]), &cfg).unwrap();
    let _ = responder.handle_bytes(data);
    drain(&mut responder);

    let mut initiator = Session::initiator(&Identity::from_secret([1; 32]), &cfg).unwrap();
    let _ = initiator.handle_bytes(data);
    drain(&mut initiator);

    for plaintext in [false, true] {
        let mut session = established(plaintext);
        let _ = session.handle_bytes(data);
        drain(&mut session);
        assert!(session.buffered_bytes() <= data.len() + 4096);
    }
});
