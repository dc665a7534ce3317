//! The invariant checks after a healed, settled run (election safety and "one entry per
//! applied index" are checked as events happen, in [`crate::observe`]):
//!
//! - log matching: two members' durable logs that hold an index with the same leader id
//!   (openraft's term: (term, node id)) hold the same entry there (every member ever started, removed ones included);
//! - no committed entry lost: every log id any member reported applied is in the durable
//!   log of every final member at its index;
//! - the client oracle, on every final member's keyspace: each list holds only tokens
//!   sent to that key, each at most once; every acknowledged token is there; and if token
//!   A was acknowledged before token B was sent, A precedes B.

use std::collections::{BTreeMap, BTreeSet};

use openraft::LeaderId;
use prism_replication::network::encode_message;
use prism_replication::NodeId;

use crate::disk::Disk;
use crate::node::read_list;
use crate::observe::Observed;

/// At most this many violations are reported per check (the first are the useful ones).
const REPORT: usize = 10;

pub fn all(o: &Observed, disks: &BTreeMap<NodeId, Disk>, members: &BTreeSet<NodeId>, keys: u32) -> Vec<String> {
    let mut v = Vec::new();
    log_matching(disks, &mut v);
    committed_kept(o, disks, members, &mut v);
    oracle(o, members, keys, &mut v);
    v
}

fn log_matching(disks: &BTreeMap<NodeId, Disk>, v: &mut Vec<String>) {
    type Image = BTreeMap<u64, (LeaderId<NodeId>, Vec<u8>)>;
    let images: Vec<(NodeId, Image)> = disks
        .iter()
        .map(|(&id, d)| {
            let d = d.lock();
            let entries = d
                .image
                .entries
                .iter()
                .map(|(&i, e)| (i, (e.log_id.leader_id, encode_message(e).unwrap_or_default())))
                .collect();
            (id, entries)
        })
        .collect();
    let mut found = 0;
    for (i, (a, la)) in images.iter().enumerate() {
        for (b, lb) in &images[i + 1..] {
            for (index, (term, bytes)) in la {
                if let Some((t, other)) = lb.get(index) {
                    if t == term && bytes != other && found < REPORT {
                        found += 1;
                        v.push(format!("log matching: n{a} and n{b} differ at index {index} of leader {term}"));
                    }
                }
            }
        }
    }
}

fn committed_kept(o: &Observed, disks: &BTreeMap<NodeId, Disk>, members: &BTreeSet<NodeId>, v: &mut Vec<String>) {
    let mut found = 0;
    for id in members {
        let Some(disk) = disks.get(id) else { continue };
        let d = disk.lock();
        let purged = d.image.purged.map(|p| p.index);
        for (index, lid) in &o.applied {
            if purged.is_some_and(|p| *index <= p) {
                continue;
            }
            let have = d.image.entries.get(index).map(|e| e.log_id);
            if have != Some(*lid) && found < REPORT {
                found += 1;
                v.push(format!("committed entry lost: {lid} was applied, n{id} holds {have:?} at index {index}"));
            }
        }
    }
}

fn oracle(o: &Observed, members: &BTreeSet<NodeId>, keys: u32, v: &mut Vec<String>) {
    let mut found = 0;
    let mut report = |v: &mut Vec<String>, s: String| {
        if found < REPORT {
            found += 1;
            v.push(s);
        }
    };
    let mut first: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in members {
        let Some(live) = o.live.get(id) else {
            report(v, format!("oracle: member n{id} never started"));
            continue;
        };
        for k in 0..keys {
            let key = format!("k{k}");
            let list = read_list(&live.keyspace, &key);
            match first.get(&key) {
                Some(l) if *l != list => report(v, format!("oracle: n{id}'s {key} differs from another member's")),
                Some(_) => {}
                None => {
                    first.insert(key.clone(), list.clone());
                }
            }
            let mut seen = BTreeSet::new();
            for token in &list {
                match o.attempts.get(token) {
                    None => report(v, format!("oracle: n{id}'s {key} holds {token}, never sent")),
                    Some(a) if a.key != key => {
                        report(v, format!("oracle: n{id}'s {key} holds {token}, sent to {}", a.key))
                    }
                    Some(_) => {}
                }
                if !seen.insert(token.as_str()) {
                    report(v, format!("oracle: n{id}'s {key} holds {token} twice"));
                }
            }
            for (token, a) in &o.attempts {
                if a.key == key && a.acked.is_some() && !seen.contains(token.as_str()) {
                    report(v, format!("oracle: acknowledged {token} missing from n{id}'s {key}"));
                }
            }
            // Real-time order: scanning from the tail, the smallest ack among the later
            // elements must come after this element was sent.
            let mut later_ack = u64::MAX;
            let mut later_token = "";
            for token in list.iter().rev() {
                let Some(a) = o.attempts.get(token) else { continue };
                if later_ack < a.sent {
                    report(
                        v,
                        format!("oracle: n{id}'s {key} has {later_token} (acked before {token} was sent) after it"),
                    );
                }
                if let Some(ack) = a.acked {
                    if ack < later_ack {
                        later_ack = ack;
                        later_token = token;
                    }
                }
            }
        }
    }
}
