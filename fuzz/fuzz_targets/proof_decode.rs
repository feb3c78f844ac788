//! Membership proofs from untrusted bytes: decoding and verifying never panics, and a
//! proof that decodes re-encodes to the same bytes.
#![no_main]

use bhsync::state::{Digest, MembershipProof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = MembershipProof::decode(data) {
        assert_eq!(proof.encode(), data, "decode then encode is the identity");
        let _ = proof.verify(&Digest([0; 32]), "fuzz", b"key", b"value");
    }
    let _ = MembershipProof::verify_encoded(data, &Digest([1; 32]), "fuzz", b"key", b"value");
});
