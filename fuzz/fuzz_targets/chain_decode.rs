//! The chain decoders on arbitrary bytes: a block and a sync message never panic and an
//! accepted one is the only encoding of its value. Then the bytes are fed to a sync
//! session, which must not panic either.
#![no_main]

use bhsync::chain::{Block, BlockLimits, Chain, ChainRules, SyncConfig, SyncMessage, SyncSession};
use bhsync::state::NodeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = BlockLimits::default();
    if let Ok(block) = Block::decode(data, &limits) {
        assert_eq!(block.to_bytes(), data);
    }
    if let Ok(message) = SyncMessage::decode(data, &limits) {
        assert_eq!(message.to_bytes(), data);
    }
    // An all-zero header with no transactions: a genesis that needs no key.
    let genesis = Block::decode(&[0; 180], &limits).expect("a zero genesis decodes");
    let mut chain = Chain::new(genesis, ChainRules::default());
    let peer = NodeId([1; 32]);
    let mut session = SyncSession::new(SyncConfig::default(), vec![peer]);
    session.start(&chain);
    session.handle_bytes(&mut chain, 0, peer, data);
    while session.poll_transmit().is_some() {}
});
