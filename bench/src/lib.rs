//! prism-bench: the load generator and its workloads. [`client`] is a small pipelined
//! RESP client shared by every workload (the same client drives Prism and Redis, so a
//! comparison measures the servers, not two clients); [`linkbench`] is the LinkBench-style
//! graph workload with its Redis model; [`cluster`] routes the same client over a Redis
//! Cluster (slot map, redirects, retries); [`plot`] draws latency percentile curves.

pub mod client;
pub mod cluster;
pub mod linkbench;
pub mod plot;
