//! A per-key linearizability checker for a register, used by the fault tests to judge a
//! recorded client history (Wing & Gong's search with Lowe's memoization, the algorithm of
//! Knossos and Porcupine).
//!
//! Model: each key is an independent register that starts as nil; a write stores a value
//! that is unique per key; a read returns the current value. Every operation carries the
//! monotonic time (ns) its client invoked it and saw it complete. The history is
//! linearizable if, key by key, every operation can be given one instant inside its
//! window so that the register's sequential behaviour explains every reply.
//!
//! Outcomes and what they allow:
//! - `WriteOk`: acknowledged; it took effect inside its window.
//! - `WriteFailed`: certainly not applied; it is left out of the search, and a read of its
//!   value is a violation of its own (a "failed" write that took effect).
//! - `WriteUnknown` (timeout, dropped connection): it took effect at any instant after its
//!   invocation, or never; it has no completion.
//! - `Read`: a value or nil. Reads that did not complete are not recorded at all (they
//!   change nothing).
//!
//! Invariants of the search: a state is (set of linearized ops, register value); a state
//! already explored is never explored again (the memo), and the number of steps and the
//! memo's size are bounded, so a pathological history gives "inconclusive" instead of
//! running forever or out of memory.
//! An unknown write whose value no read returned is dropped before the search: taking it
//! "never" explains every reply that taking it at some instant does, because no read
//! could have observed it.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// What an operation did and what its client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    WriteOk(String),
    WriteFailed(String),
    WriteUnknown(String),
    Read(Option<String>),
}

/// One operation of one client on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub action: Action,
    /// Monotonic ns when the client sent the first attempt.
    pub invoke: u64,
    /// Monotonic ns when the client saw the outcome (ignored for `WriteUnknown`).
    pub complete: u64,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        let what = match &self.action {
            Action::WriteOk(v) => format!("write {v:?} (acknowledged)"),
            Action::WriteFailed(v) => format!("write {v:?} (failed)"),
            Action::WriteUnknown(v) => format!("write {v:?} (outcome unknown)"),
            Action::Read(Some(v)) => format!("read -> {v:?}"),
            Action::Read(None) => "read -> nil".to_string(),
        };
        match self.action {
            Action::WriteUnknown(_) => write!(f, "client {} {what} invoked at {:.3} ms", self.client, ms(self.invoke)),
            _ => {
                write!(f, "client {} {what} during [{:.3}, {:.3}] ms", self.client, ms(self.invoke), ms(self.complete))
            }
        }
    }
}

/// A key whose history has no linearization, and why.
#[derive(Debug, Clone)]
pub struct Violation {
    pub key: String,
    pub explanation: String,
}

/// The verdict over a whole history.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub keys: usize,
    pub ops: usize,
    pub violations: Vec<Violation>,
    /// Keys whose search hit the step or memory bound.
    pub inconclusive: Vec<String>,
}

impl Report {
    /// True only if every key was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.inconclusive.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ops over {} keys: ", self.ops, self.keys)?;
        if self.is_linearizable() {
            return write!(f, "linearizable");
        }
        for v in &self.violations {
            write!(f, "\n  NOT linearizable, key {:?}: {}", v.key, v.explanation)?;
        }
        for k in &self.inconclusive {
            write!(f, "\n  inconclusive (search bound reached), key {k:?}")?;
        }
        Ok(())
    }
}

/// Default bound on search steps per key.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;

/// Bound on the memo, in 64-bit words (256 MiB): with long histories each remembered state
/// is a large bitset, so memory, not steps, is what runs out first.
const MAX_MEMO_WORDS: usize = 32 << 20;

/// Checks every key of `history` independently.
pub fn check(history: &[Op], max_steps: u64) -> Report {
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let mut report = Report { keys: keys.len(), ops: history.len(), ..Report::default() };
    for key in keys {
        match check_key(&by_key[key], max_steps) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation(explanation) => {
                report.violations.push(Violation { key: key.to_string(), explanation })
            }
            KeyVerdict::Inconclusive => report.inconclusive.push(key.to_string()),
        }
    }
    report
}

enum KeyVerdict {
    Linearizable,
    Violation(String),
    Inconclusive,
}

/// An op as the search sees it: values interned (0 is nil), unknown writes without a return.
struct SearchOp<'a> {
    op: &'a Op,
    write: bool,
    value: u32,
    call_entry: usize,
    return_entry: Option<usize>,
}

fn check_key(ops: &[&Op], max_steps: u64) -> KeyVerdict {
    // Values by the writes that produced them; 0 stands for nil.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut writer: HashMap<&str, &Op> = HashMap::new();
    let mut failed: HashMap<&str, &Op> = HashMap::new();
    for op in ops {
        if !matches!(op.action, Action::WriteUnknown(_)) && op.complete < op.invoke {
            return KeyVerdict::Violation(format!("malformed history: {op} completes before it starts"));
        }
        match &op.action {
            Action::WriteOk(v) | Action::WriteUnknown(v) => {
                if writer.insert(v, op).is_some() {
                    return KeyVerdict::Violation(format!("malformed history: value {v:?} written twice"));
                }
                let next = ids.len() as u32 + 1;
                ids.insert(v, next);
            }
            Action::WriteFailed(v) => {
                failed.insert(v, op);
            }
            Action::Read(_) => {}
        }
    }
    // Reads that no ordering can explain get a direct explanation before any search.
    let mut read_values: HashSet<&str> = HashSet::new();
    for op in ops {
        let Action::Read(Some(v)) = &op.action else { continue };
        read_values.insert(v);
        match writer.get(v.as_str()) {
            None => {
                return KeyVerdict::Violation(match failed.get(v.as_str()) {
                    Some(w) => format!("{op} saw the value of a write reported as not applied: {w}"),
                    None => format!("{op} saw a value that no write produced"),
                })
            }
            Some(w) if op.complete < w.invoke => {
                return KeyVerdict::Violation(format!("{op} saw a value before its write began: {w}"));
            }
            Some(_) => {}
        }
    }

    let mut search: Vec<SearchOp> = Vec::new();
    for op in ops {
        let (write, value) = match &op.action {
            Action::WriteFailed(_) => continue,
            Action::WriteUnknown(v) if !read_values.contains(v.as_str()) => continue,
            Action::WriteOk(v) | Action::WriteUnknown(v) => (true, ids[v.as_str()]),
            Action::Read(None) => (false, 0),
            Action::Read(Some(v)) => (false, ids[v.as_str()]),
        };
        search.push(SearchOp { op, write, value, call_entry: 0, return_entry: None });
    }
    Search::new(search).run(max_steps)
}

/// An event of the list the search walks: the call or the return of an op.
#[derive(Clone, Copy)]
enum Entry {
    Call(usize),
    Return(usize),
    Sentinel,
}

/// Wing & Gong's search over a doubly linked event list (lifting an op unlinks its call and
/// return; backtracking relinks them in reverse order).
struct Search<'a> {
    ops: Vec<SearchOp<'a>>,
    entries: Vec<Entry>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

const HEAD: usize = 0;

impl<'a> Search<'a> {
    fn new(mut ops: Vec<SearchOp<'a>>) -> Search<'a> {
        // (time, is_return, op): at equal times calls sort first, so touching windows count
        // as concurrent and never produce a false violation.
        let mut events: Vec<(u64, bool, usize)> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            events.push((o.op.invoke, false, i));
            if !matches!(o.op.action, Action::WriteUnknown(_)) {
                events.push((o.op.complete, true, i));
            }
        }
        events.sort_unstable();
        let mut entries = vec![Entry::Sentinel];
        for &(_, is_return, i) in &events {
            let at = entries.len();
            if is_return {
                ops[i].return_entry = Some(at);
                entries.push(Entry::Return(i));
            } else {
                ops[i].call_entry = at;
                entries.push(Entry::Call(i));
            }
        }
        entries.push(Entry::Sentinel);
        let n = entries.len();
        let prev = (0..n).map(|i| i.saturating_sub(1)).collect();
        let next = (0..n).map(|i| (i + 1).min(n - 1)).collect();
        Search { ops, entries, prev, next }
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.ops[op].call_entry);
        if let Some(r) = self.ops[op].return_entry {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, op: usize) {
        if let Some(r) = self.ops[op].return_entry {
            self.relink(r);
        }
        self.relink(self.ops[op].call_entry);
    }

    fn run(mut self, max_steps: u64) -> KeyVerdict {
        let words = self.ops.len().div_ceil(64);
        let mut linearized = vec![0u64; words];
        let mut seen: HashSet<(Vec<u64>, u32)> = HashSet::new();
        let mut stack: Vec<(usize, u32)> = Vec::new();
        let mut state = 0u32;
        let mut entry = self.next[HEAD];
        // The deepest point reached, kept to explain a failure: (depth, blocking op, stack).
        let mut deepest: Option<(usize, usize, Vec<usize>)> = None;
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > max_steps {
                return KeyVerdict::Inconclusive;
            }
            match self.entries[entry] {
                // Only calls of unknown writes are left unlinked: each of them may never happen.
                Entry::Sentinel => return KeyVerdict::Linearizable,
                Entry::Call(i) => {
                    let o = &self.ops[i];
                    let (ok, new_state) = if o.write { (true, o.value) } else { (o.value == state, state) };
                    if ok {
                        linearized[i / 64] |= 1 << (i % 64);
                        if seen.len().saturating_mul(words.max(1)) > MAX_MEMO_WORDS {
                            return KeyVerdict::Inconclusive;
                        }
                        if seen.insert((linearized.clone(), new_state)) {
                            stack.push((i, state));
                            state = new_state;
                            self.lift(i);
                            entry = self.next[HEAD];
                            continue;
                        }
                        linearized[i / 64] &= !(1 << (i % 64));
                    }
                    entry = self.next[entry];
                }
                Entry::Return(i) => {
                    // Op i returned, yet no op placed so far lets it take effect: backtrack.
                    if deepest.as_ref().is_none_or(|d| stack.len() > d.0) {
                        deepest = Some((stack.len(), i, stack.iter().map(|s| s.0).collect()));
                    }
                    let Some((top, before)) = stack.pop() else {
                        return KeyVerdict::Violation(self.explain(deepest));
                    };
                    state = before;
                    linearized[top / 64] &= !(1 << (top % 64));
                    self.unlift(top);
                    entry = self.next[self.ops[top].call_entry];
                }
            }
        }
    }

    fn explain(&self, deepest: Option<(usize, usize, Vec<usize>)>) -> String {
        let Some((depth, blocker, order)) = deepest else { return "no linearization exists".to_string() };
        let last_write = order.iter().rev().find(|&&i| self.ops[i].write).map(|&i| self.ops[i].op);
        let holds = match last_write {
            Some(w) => format!("the register holds the value of {w}"),
            None => "the register is still nil".to_string(),
        };
        format!(
            "no order of the operations explains {}; the longest explainable order places {depth} of {} ops, \
             after which {holds}",
            self.ops[blocker].op,
            self.ops.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, action: Action, invoke: u64, complete: u64) -> Op {
        Op { client, key: "k".into(), action, invoke, complete }
    }
    fn w(client: usize, v: &str, invoke: u64, complete: u64) -> Op {
        op(client, Action::WriteOk(v.into()), invoke, complete)
    }
    fn unknown(client: usize, v: &str, invoke: u64) -> Op {
        op(client, Action::WriteUnknown(v.into()), invoke, 0)
    }
    fn r(client: usize, v: Option<&str>, invoke: u64, complete: u64) -> Op {
        op(client, Action::Read(v.map(String::from)), invoke, complete)
    }
    fn verdict(history: &[Op]) -> Report {
        check(history, DEFAULT_MAX_STEPS)
    }

    #[test]
    fn sequential_and_concurrent_histories_pass() {
        let h =
            [r(0, None, 0, 5), w(0, "a", 10, 20), r(1, Some("a"), 25, 30), w(1, "b", 40, 50), r(0, Some("b"), 60, 70)];
        assert!(verdict(&h).is_linearizable(), "{}", verdict(&h));
        // Two overlapping writes; concurrent reads may see either order, as long as one
        // order explains both readers.
        let h = [
            w(0, "a", 0, 100),
            w(1, "b", 10, 90),
            r(2, Some("b"), 20, 30),
            r(3, Some("a"), 40, 50),
            r(2, Some("a"), 95, 99),
        ];
        assert!(verdict(&h).is_linearizable(), "{}", verdict(&h));
        // A read concurrent with a write may see the old or the new value.
        let h = [w(0, "a", 0, 10), w(1, "b", 20, 60), r(2, Some("a"), 30, 40), r(3, Some("b"), 35, 45)];
        assert!(verdict(&h).is_linearizable(), "{}", verdict(&h));
    }

    #[test]
    fn stale_read_fails() {
        let h = [w(0, "a", 0, 10), w(0, "b", 20, 30), r(1, Some("a"), 40, 50)];
        let report = verdict(&h);
        assert!(!report.is_linearizable());
        let text = report.to_string();
        assert!(text.contains("read -> \"a\"") && text.contains("write \"b\""), "{text}");
    }

    #[test]
    fn readers_disagreeing_on_write_order_fail() {
        // Each reader alone is fine; together they need "a" before "b" and "b" before "a".
        let h = [
            w(0, "a", 0, 100),
            w(1, "b", 0, 100),
            r(2, Some("a"), 10, 20),
            r(2, Some("b"), 30, 40),
            r(3, Some("b"), 10, 20),
            r(3, Some("a"), 30, 40),
        ];
        assert!(!verdict(&h).is_linearizable(), "{}", verdict(&h));
    }

    #[test]
    fn lost_acknowledged_write_fails() {
        // The final read after healing sees nil: the acknowledged write vanished.
        let h = [w(0, "a", 0, 10), r(1, None, 100, 110)];
        let text = verdict(&h).to_string();
        assert!(text.contains("NOT linearizable") && text.contains("read -> nil"), "{text}");
        // Or an older value came back after failover.
        let h = [w(0, "a", 0, 10), w(0, "b", 20, 30), r(1, Some("b"), 40, 45), r(1, Some("a"), 100, 110)];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn read_of_a_never_written_value_fails() {
        let h = [w(0, "a", 0, 10), r(1, Some("zzz"), 20, 30)];
        let text = verdict(&h).to_string();
        assert!(text.contains("no write produced"), "{text}");
        let h = [op(0, Action::WriteFailed("x".into()), 0, 10), r(1, Some("x"), 20, 30)];
        let text = verdict(&h).to_string();
        assert!(text.contains("reported as not applied"), "{text}");
        let h = [r(1, Some("a"), 0, 5), w(0, "a", 10, 20)];
        let text = verdict(&h).to_string();
        assert!(text.contains("before its write began"), "{text}");
    }

    #[test]
    fn unknown_write_may_have_happened() {
        // Observed long after its client gave up: it took effect late.
        let h = [w(0, "a", 0, 10), unknown(1, "b", 20), r(2, Some("a"), 30, 40), r(2, Some("b"), 500, 510)];
        assert!(verdict(&h).is_linearizable(), "{}", verdict(&h));
        // But never before it was invoked.
        let h = [w(0, "a", 0, 10), r(2, Some("b"), 12, 15), unknown(1, "b", 20)];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn unknown_write_may_never_have_happened() {
        let h = [w(0, "a", 0, 10), unknown(1, "b", 20), r(2, Some("a"), 30, 40), r(2, Some("a"), 500, 510)];
        assert!(verdict(&h).is_linearizable(), "{}", verdict(&h));
        // Observed once, it cannot be undone afterwards.
        let h = [w(0, "a", 0, 10), unknown(1, "b", 20), r(2, Some("b"), 30, 40), r(2, Some("a"), 500, 510)];
        assert!(!verdict(&h).is_linearizable());
    }

    #[test]
    fn keys_are_independent_and_named() {
        let mut h = vec![w(0, "a", 0, 10), r(1, Some("a"), 20, 30)];
        h.push(Op { key: "other".into(), ..w(0, "x", 0, 10) });
        h.push(Op { key: "other".into(), ..r(1, None, 20, 30) });
        let report = verdict(&h);
        assert_eq!(report.keys, 2);
        assert_eq!(report.violations.len(), 1);
        assert_eq!(report.violations[0].key, "other");
    }

    #[test]
    fn many_concurrent_clients_stay_tractable_and_the_bound_reports_inconclusive() {
        // 6 clients, 300 rounds of overlapping writes and reads that see the latest value.
        let mut h = Vec::new();
        for round in 0..300u64 {
            let t = round * 100;
            for c in 0..6 {
                h.push(w(c, &format!("{round}-{c}"), t, t + 50));
            }
            h.push(r(9, Some(&format!("{round}-5")), t + 60, t + 70));
        }
        let report = verdict(&h);
        assert!(report.is_linearizable(), "{report}");
        let bounded = check(&h, 100);
        assert!(!bounded.is_linearizable());
        assert_eq!(bounded.inconclusive, vec!["k".to_string()]);
    }
}
