//! Accept under descriptor exhaustion, for both backends. It lowers RLIMIT_NOFILE, which
//! affects the whole process, so it lives alone in its own test binary (one test, run
//! sequentially over the backends). Reproduce with `cargo test --test engine_io`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use bhsync::engine::io::{open_backend, Backend, BackendChoice, IoConfig, IoEvent};

/// The lowest descriptor number that is free now.
fn lowest_free_fd() -> u64 {
    let file = std::fs::File::open("/dev/null").expect("open /dev/null");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    u64::try_from(fd).expect("descriptors are non-negative")
}

fn set_nofile(soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: pointers to live rlimit values.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: old.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
    }
    old
}

fn accepted(backend: &mut dyn Backend, wait: Duration) -> usize {
    let mut count = 0;
    let start = Instant::now();
    while start.elapsed() < wait {
        let mut sink = |event: IoEvent<'_>| count += usize::from(matches!(event, IoEvent::Accepted { .. }));
        backend.poll(Some(Duration::from_millis(50)), &mut sink).expect("poll");
    }
    count
}

fn accept_pauses_while_descriptors_are_exhausted(choice: BackendChoice) {
    let mut backend = open_backend(&IoConfig { choice, ..IoConfig::default() }).expect("open");
    let name = backend.kind();
    let addr = backend.listen("127.0.0.1:0".parse().expect("literal")).expect("listen");
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    let old = set_nofile(lowest_free_fd());
    let before = backend.stats().syscalls;
    let during = accepted(backend.as_mut(), Duration::from_millis(400));
    let syscalls = backend.stats().syscalls - before;
    eprintln!("{name}: {syscalls} kernel calls while paused");
    // SAFETY: restores the limit read above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &old), 0) };
    assert_eq!(during, 0, "{name}: nothing can be accepted without a free descriptor");
    assert!(syscalls < 40, "{name}: {syscalls} kernel calls in 400 ms: the listener spins instead of pausing");
    let start = Instant::now();
    let mut after = 0;
    while after < clients.len() {
        assert!(start.elapsed() < Duration::from_secs(5), "{name}: the listener never resumed ({after} accepted)");
        after += accepted(backend.as_mut(), Duration::from_millis(100));
    }
    assert_eq!(after, clients.len(), "{name}: every queued connection is accepted once descriptors free up");
}

#[test]
fn accept_pauses_while_descriptors_are_exhausted_then_resumes() {
    accept_pauses_while_descriptors_are_exhausted(BackendChoice::Mio);
    accept_pauses_while_descriptors_are_exhausted(BackendChoice::IoUring);
}
