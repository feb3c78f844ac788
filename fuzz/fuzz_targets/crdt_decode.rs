//! Every CRDT decoder on arbitrary bytes: never a panic; an accepted value re-encodes
//! to bytes that decode to the same value; merging it with itself changes nothing.
#![no_main]

use bhsync::crdt::{AnyCrdt, Crdt, GCounter, LwwMap, LwwRegister, MvRegister, OrSet, PnCounter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = AnyCrdt::decode(data) {
        let encoded = value.encode();
        assert_eq!(AnyCrdt::decode(&encoded).as_ref(), Ok(&value));
        let mut doubled = value.clone();
        doubled.merge(&value).expect("same kind");
        assert_eq!(doubled, value);
    }
    let _ = GCounter::decode(data);
    let _ = PnCounter::decode(data);
    let _ = LwwRegister::decode(data);
    let _ = MvRegister::decode(data);
    let _ = OrSet::decode(data);
    let _ = LwwMap::decode(data);
});
