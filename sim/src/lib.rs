//! prism-sim: deterministic simulation of Prism's Raft groups (issue 8).
//!
//! A seed fixes a whole run: a 3-member group (5 hosts when the seed changes membership)
//! on turmoil's simulated network and clock, with the real openraft, the real raft config
//! and the real `KeyspaceStateMachine` over the engine; only the log disk ([`disk`]:
//! unsynced appends are lost on a crash) and the network ([`net`]) are simulated. Faults
//! drawn from the seed (partitions, one-way partitions, held messages, isolation, message
//! loss, crashes and restarts, membership changes) hit it while 1-3 clients push unique
//! tokens; then everything heals, the group settles and [`check`] verifies election
//! safety, log matching, that no committed entry was lost, and the client oracle.
//!
//! Invariant of the crate: nothing in a run depends on anything but its seed (ordered
//! maps only, every RNG seeded, one thread); `tests/seeds.rs` checks that a seed replays
//! the same trace. docs/simulation.md says how to run and reproduce seeds.

pub mod check;
pub mod client;
pub mod disk;
pub mod net;
pub mod node;
pub mod observe;
pub mod run;

pub use disk::DiskFault;
pub use run::{run_seed, Options, Outcome};

/// The command that re-runs one seed (printed with every failure).
pub fn rerun_command(seed: u64, fault: DiskFault) -> String {
    let broken = if fault == DiskFault::AckBeforeSync { " SIM_BROKEN=1" } else { "" };
    format!("cd sim && SIM_SEED={seed}{broken} cargo run --bin sim")
}

/// A failed seed's report: the violations, the re-run command, the trace's tail.
pub fn failure_report(o: &Outcome, fault: DiskFault) -> String {
    let mut s = format!("seed {} FAILED ({} violations):\n", o.seed, o.violations.len());
    for v in &o.violations {
        s.push_str(&format!("  - {v}\n"));
    }
    s.push_str(&format!("  re-run: {}\n", rerun_command(o.seed, fault)));
    s
}
