//! prism-replication: will hold the openraft type config (a log entry is a batch of
//! [`prism_engine::Write`]s), the RocksDB log store, the state machine over the engine and
//! the peer network (issue 5). Until then a node applies writes locally, through the
//! server's write path, which is the single seam where the Raft log will be inserted.
