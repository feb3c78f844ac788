//! `cargo bench --bench compression -- [--json]`
//!
//! Which compressor pays for reconciliation's entry batches (issue 3): lz4 (lz4_flex,
//! pure Rust) against zstd levels 1 and 3, in the same run, on three kinds of batch: text
//! values (the demo's), JSON-like records, and random bytes (hashes, ciphertext). Each
//! batch is the body of one `Items` frame, about 64 KiB, as the protocol lays it out. Reports
//! the compression ratio and compress + decompress throughput. Run by `cargo test` as a
//! smoke test on one batch per corpus.

use std::time::Instant;

use bhsync::reconcile::message;
use bhsync::sansio::SeededRng as Rng;
use bhsync::state::{Entry, NodeId, Version};

fn entry(rng: &mut Rng, key: String, value: Vec<u8>) -> Entry {
    let hlc = 1_700_000_000_000u64 << 16 | (rng.next_u64() & 0xffff);
    let version = Version { hlc, origin: NodeId([(rng.next_u64() % 5) as u8; 32]), counter: rng.next_u64() % 100_000, tombstone: false };
    Entry { key: key.into_bytes(), value, version }
}

fn corpus(kind: &str, rng: &mut Rng) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut size = 0;
    let mut n = 0u64;
    while size < 64 * 1024 {
        let e = match kind {
            "text" => {
                let replica = rng.next_u64() % 5;
                entry(rng, format!("r{replica}-{n}"), format!("value {n} from replica {replica}").into_bytes())
            }
            "json" => {
                let id = rng.next_u64() % 1_000_000;
                let (age, role, active, score, cents) =
                    (18 + rng.next_u64() % 60, ["writer", "admin", "auditor"][(rng.next_u64() % 3) as usize], rng.next_u64() % 2 == 0, rng.next_u64() % 1000, rng.next_u64() % 100);
                let value = format!(
                    r#"{{"id":{id},"name":"user-{id}","email":"user{id}@example.org","age":{age},"roles":["reader","{role}"],"active":{active},"score":{score}.{cents}}}"#
                );
                entry(rng, format!("users/{id}"), value.into_bytes())
            }
            _ => {
                let value: Vec<u8> = (0..100).map(|_| rng.next_u64() as u8).collect();
                let key: Vec<u8> = (0..32).map(|_| rng.next_u64() as u8).collect();
                let base = entry(rng, String::new(), value);
                Entry { key, ..base }
            }
        };
        size += e.key.len() + e.value.len() + 60;
        entries.push(e);
        n += 1;
    }
    // The body as the protocol lays it out before compressing it.
    message::encode_entries(&entries)
}

fn measure(name: &str, data: &[u8], rounds: usize, compress: impl Fn(&[u8]) -> Vec<u8>, decompress: impl Fn(&[u8], usize) -> Vec<u8>) -> (String, f64, f64) {
    let packed = compress(data);
    assert_eq!(decompress(&packed, data.len()), data, "{name} round trip");
    let start = Instant::now();
    for _ in 0..rounds {
        let packed = compress(data);
        std::hint::black_box(decompress(&packed, data.len()));
    }
    let seconds = start.elapsed().as_secs_f64();
    (name.to_owned(), data.len() as f64 / packed.len() as f64, (data.len() * rounds) as f64 / seconds / 1e6)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let json = std::env::args().any(|a| a == "--json");
    let rounds = if benching { 200 } else { 2 };
    let mut rng = Rng::new(7);
    if !json {
        println!("{:<8} {:<8} {:>8} {:>14}", "corpus", "codec", "ratio", "MB/s (c+d)");
    }
    for kind in ["text", "json", "random"] {
        let data = corpus(kind, &mut rng);
        let results = [
            measure("lz4", &data, rounds, lz4_flex::block::compress, |p, n| lz4_flex::block::decompress(p, n).expect("lz4")),
            measure("zstd-1", &data, rounds, |d| zstd::bulk::compress(d, 1).expect("zstd"), |p, n| zstd::bulk::decompress(p, n).expect("zstd")),
            measure("zstd-3", &data, rounds, |d| zstd::bulk::compress(d, 3).expect("zstd"), |p, n| zstd::bulk::decompress(p, n).expect("zstd")),
        ];
        for (codec, ratio, speed) in results {
            if json {
                println!("{{\"bench\":\"compression\",\"corpus\":\"{kind}\",\"codec\":\"{codec}\",\"bytes\":{},\"ratio\":{ratio:.3},\"mb_per_s\":{speed:.1}}}", data.len());
            } else {
                println!("{kind:<8} {codec:<8} {ratio:>8.2} {speed:>14.1}");
            }
        }
    }
}
