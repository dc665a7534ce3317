//! prism-bench: the load generator and its workloads. [`client`] is a small pipelined
//! RESP client shared by every workload (the same client drives Prism and Redis, so a
//! comparison measures the servers, not two clients); [`linkbench`] is the LinkBench-style
//! graph workload with its Redis model; [`plot`] draws latency percentile curves.

pub mod client;
pub mod linkbench;
pub mod plot;
