//! The engine: the runtime that drives the sans-IO core with real threads (and, later,
//! real sockets and io_uring). For now it holds the shard runner, which applies work to
//! each shard of a category on its own pinned thread.

pub mod io;
pub mod shard_runner;
