//! The fleet's topology file: which shards exist, which slots each serves and which
//! nodes are the members of each shard's Raft group (issue 6).
//!
//! `prism cluster init` writes it ([`FleetSpec::plan`]); every node of the fleet is
//! started with the same file (`cluster-topology`) and its own `node-id`, finds its shard
//! in it and forms or rejoins that shard's group by itself: there is no create step.
//! The file is TOML:
//!
//! ```toml
//! [[shard]]
//! id = 1
//! slots = ["0-5460"]
//! members = [
//!   { id = 1, host = "10.0.0.1", port = 6379, peer-port = 16379, zone = "a" },
//!   { id = 2, host = "10.0.0.2", port = 6379, peer-port = 16379, zone = "b" },
//!   { id = 3, host = "10.0.0.3", port = 6379, peer-port = 16379, zone = "c" },
//! ]
//! ```
//!
//! Invariants (checked by [`FleetSpec::parse`], errors name the shard or member):
//! - every one of the 16384 slots belongs to exactly one shard;
//! - shard ids are unique and non-zero, node ids unique and non-zero across the fleet,
//!   and no two members share a client or peer address;
//! - when zones are given, no two members of one shard are in the same zone ([`plan`]
//!   places them so; a hand-written file that breaks it is refused).
//!
//! [`plan`]: FleetSpec::plan

pub mod catalog;
pub mod fanout;
pub mod mover;
pub mod moving;
pub mod outbox;
pub mod view;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use prism_engine::SLOT_COUNT;
use serde::Deserialize;

use crate::config::GroupMember;

/// A member of a shard as the topology file names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MemberSpec {
    pub id: u64,
    pub host: String,
    pub port: u16,
    /// Defaults to `port + 10000` (Redis's cluster bus convention).
    #[serde(default)]
    pub peer_port: Option<u16>,
    #[serde(default)]
    pub zone: Option<String>,
}

impl MemberSpec {
    pub fn peer_port(&self) -> u16 {
        self.peer_port.unwrap_or(self.port.wrapping_add(10000))
    }

    pub fn as_group_member(&self) -> GroupMember {
        GroupMember { id: self.id, host: self.host.clone(), port: self.port, peer_port: self.peer_port() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    /// The shard's Raft group id (non-zero).
    pub id: u32,
    /// Inclusive slot ranges, written `"a-b"` or `"a"`.
    #[serde(deserialize_with = "slot_ranges")]
    pub slots: Vec<(u16, u16)>,
    pub members: Vec<MemberSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Node ids of the metadata group's voters ([`FleetSpec::metadata_voters`] chooses
    /// them when the file does not).
    #[serde(default)]
    pub metadata: Vec<u64>,
    #[serde(rename = "shard")]
    pub shards: Vec<ShardSpec>,
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let slot = |s: &str| s.trim().parse::<u16>().ok().filter(|v| (*v as usize) < SLOT_COUNT);
    match (slot(a), slot(b)) {
        (Some(a), Some(b)) if a <= b => Ok((a, b)),
        _ => Err(format!("'{text}' is not a slot range <first>-<last> within 0-{}", SLOT_COUNT - 1)),
    }
}

fn slot_ranges<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(u16, u16)>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts.iter().map(|t| parse_range(t)).collect::<Result<_, _>>().map_err(serde::de::Error::custom)
}

impl FleetSpec {
    /// Parses and checks a topology file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<FleetSpec, String> {
        let spec: FleetSpec = toml::from_str(text).map_err(|e| format!("{origin}: {}", e.to_string().trim_end()))?;
        spec.check().map_err(|e| format!("{origin}: {e}"))?;
        Ok(spec)
    }

    /// Reads and checks the topology file at `path`.
    pub fn load(path: &std::path::Path) -> Result<FleetSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        FleetSpec::parse(&text, &path.display().to_string())
    }

    fn check(&self) -> Result<(), String> {
        if self.shards.is_empty() {
            return Err("no [[shard]] entries".into());
        }
        let mut owner = vec![0u32; SLOT_COUNT];
        let (mut shard_ids, mut node_ids, mut addrs) = (HashSet::new(), HashSet::new(), HashSet::new());
        for shard in &self.shards {
            if shard.id == 0 || !shard_ids.insert(shard.id) {
                return Err(format!("shard id {} is zero or appears twice", shard.id));
            }
            if shard.members.is_empty() {
                return Err(format!("shard {} has no members", shard.id));
            }
            for &(a, b) in &shard.slots {
                for slot in a..=b {
                    match owner[slot as usize] {
                        0 => owner[slot as usize] = shard.id,
                        other => return Err(format!("slot {slot} is in both shard {other} and shard {}", shard.id)),
                    }
                }
            }
            let mut zones = HashSet::new();
            for m in &shard.members {
                if m.id == 0 || !node_ids.insert(m.id) {
                    return Err(format!("node id {} (shard {}) is zero or appears twice", m.id, shard.id));
                }
                let no_peer_port = m.peer_port.is_none() && m.port.checked_add(10000).is_none();
                if m.host.is_empty() || m.port == 0 || no_peer_port || m.peer_port() == 0 || m.port == m.peer_port() {
                    return Err(format!(
                        "node {}: bad address {}:{} (peer port {})",
                        m.id,
                        m.host,
                        m.port,
                        m.peer_port()
                    ));
                }
                for addr in [format!("{}:{}", m.host, m.port), format!("{}:{}", m.host, m.peer_port())] {
                    if !addrs.insert(addr.clone()) {
                        return Err(format!("node {}: address {addr} is used twice", m.id));
                    }
                }
                if let Some(zone) = &m.zone {
                    if !zones.insert(zone.clone()) {
                        return Err(format!("shard {} has two members in zone '{zone}'", shard.id));
                    }
                }
            }
        }
        if let Some(id) = self.metadata.iter().find(|id| !node_ids.contains(*id)) {
            return Err(format!("metadata: node id {id} is not a member of any shard"));
        }
        if self.metadata.iter().collect::<HashSet<_>>().len() != self.metadata.len() {
            return Err("metadata: a node id appears twice".into());
        }
        if let Some(first) = owner.iter().position(|o| *o == 0) {
            let last = owner[first..].iter().position(|o| *o != 0).map_or(SLOT_COUNT - 1, |n| first + n - 1);
            return Err(format!("slots {first}-{last} belong to no shard"));
        }
        Ok(())
    }

    /// The shard `node` is a member of, if any.
    pub fn shard_of_node(&self, node: u64) -> Option<&ShardSpec> {
        self.shards.iter().find(|s| s.members.iter().any(|m| m.id == node))
    }

    /// The shard id that owns each slot per the file (`NO_SHARD` where none does):
    /// the base of every node's slot ownership (`prism_engine::shard_meta`).
    pub fn base_owners(&self) -> Vec<u32> {
        let mut owners = vec![prism_engine::shard_meta::NO_SHARD; prism_engine::SLOT_COUNT];
        for shard in &self.shards {
            for &(first, last) in &shard.slots {
                for slot in first..=last {
                    if let Some(o) = owners.get_mut(slot as usize) {
                        *o = shard.id;
                    }
                }
            }
        }
        owners
    }

    /// The metadata group's voters: the file's `metadata` list, else three nodes taken
    /// from the first shards in turn (shard 1's first member, shard 2's second, ...), so
    /// that they sit on different shards and, as [`FleetSpec::plan`] places zones, in
    /// different zones; fewer when the fleet has fewer nodes.
    pub fn metadata_voters(&self) -> Vec<u64> {
        if !self.metadata.is_empty() {
            return self.metadata.clone();
        }
        let total = self.members().count();
        let mut voters = Vec::new();
        let n = self.shards.len();
        // Round r takes member k + r of shard k: every member is reached in time.
        for i in 0.. {
            if voters.len() >= total.min(3) {
                break;
            }
            let (k, round) = (i % n, i / n);
            let shard = &self.shards[k];
            let id = shard.members[(k + round) % shard.members.len()].id;
            if !voters.contains(&id) {
                voters.push(id);
            }
        }
        voters
    }

    /// Every member of the fleet.
    pub fn members(&self) -> impl Iterator<Item = (&ShardSpec, &MemberSpec)> {
        self.shards.iter().flat_map(|s| s.members.iter().map(move |m| (s, m)))
    }

    /// Lays out a fleet: `nodes` (client addresses, in order; node ids 1, 2, ... in that
    /// order) into shards of `replicas + 1` members with the slots spread evenly (as
    /// `redis-cli --cluster create` does). With `zones` (one per node), each shard's
    /// members are in distinct zones: an error says so when that cannot be done.
    pub fn plan(nodes: &[(String, u16)], replicas: usize, zones: Option<&[String]>) -> Result<FleetSpec, String> {
        let size = replicas + 1;
        if nodes.is_empty() || !nodes.len().is_multiple_of(size) {
            return Err(format!("{} nodes do not make shards of {size} (replicas {replicas} + 1)", nodes.len()));
        }
        let shards = nodes.len() / size;
        if shards > SLOT_COUNT {
            return Err(format!("{shards} shards is more than {SLOT_COUNT} slots"));
        }
        if let Some(z) = zones {
            if z.len() != nodes.len() {
                return Err(format!("{} zones given for {} nodes (one zone per node)", z.len(), nodes.len()));
            }
        }
        let zone_of = |i: usize| zones.map(|z| z[i].clone());
        // Nodes waiting for a shard, per zone (nodes without zones all share one).
        let mut pools: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for i in (0..nodes.len()).rev() {
            pools.entry(zone_of(i)).or_default().push(i);
        }
        let mut out = Vec::with_capacity(shards);
        for s in 0..shards {
            let mut picked: Vec<usize> = Vec::with_capacity(size);
            if zones.is_none() {
                let pool = pools.get_mut(&None).expect("one pool without zones");
                picked.extend((0..size).filter_map(|_| pool.pop()));
            } else {
                // The zones with most nodes left first, so the last shards still find
                // distinct zones whenever a placement exists.
                let mut order: Vec<Option<String>> =
                    pools.iter().filter(|(_, p)| !p.is_empty()).map(|(z, _)| z.clone()).collect();
                order.sort_by_key(|z| std::cmp::Reverse(pools[z].len()));
                for z in order.into_iter().take(size) {
                    picked.extend(pools.get_mut(&z).and_then(|p| p.pop()));
                }
                if picked.len() < size {
                    return Err(format!(
                        "cannot place shard {} in {size} distinct zones: too few zones, or one zone holds more than \
                         one node per shard",
                        s + 1
                    ));
                }
            }
            picked.sort_unstable();
            // redis-cli's split: shard s ends at round((s + 1) * 16384 / shards - 1).
            let end = |s: usize| ((SLOT_COUNT as f64 * (s + 1) as f64 / shards as f64) - 1.0).round() as usize;
            let first = if s == 0 { 0 } else { end(s - 1) + 1 };
            let last = if s + 1 == shards { SLOT_COUNT - 1 } else { end(s) };
            let members = picked
                .into_iter()
                .map(|i| MemberSpec {
                    id: i as u64 + 1,
                    host: nodes[i].0.clone(),
                    port: nodes[i].1,
                    peer_port: nodes[i].1.checked_add(10000),
                    zone: zone_of(i),
                })
                .collect();
            out.push(ShardSpec { id: s as u32 + 1, slots: vec![(first as u16, last as u16)], members });
        }
        let mut spec = FleetSpec { metadata: Vec::new(), shards: out };
        spec.metadata = spec.metadata_voters();
        spec.check()?;
        Ok(spec)
    }

    /// The topology file's text: what [`FleetSpec::parse`] reads back.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Prism fleet topology (prism cluster init). Every node of the fleet is started with\n\
             # this file (cluster-topology) and its own node-id.\n",
        );
        // The metadata group's voters, written out so an operator sees (and may change,
        // before the first start) where the catalog lives.
        if !self.metadata.is_empty() {
            let voters: Vec<String> = self.metadata.iter().map(|v| v.to_string()).collect();
            let _ = writeln!(out, "metadata = [{}]", voters.join(", "));
        }
        for shard in &self.shards {
            let slots: Vec<String> = shard
                .slots
                .iter()
                .map(|(a, b)| if a == b { format!("\"{a}\"") } else { format!("\"{a}-{b}\"") })
                .collect();
            let _ = write!(out, "\n[[shard]]\nid = {}\nslots = [{}]\nmembers = [\n", shard.id, slots.join(", "));
            for m in &shard.members {
                let _ = write!(
                    out,
                    "  {{ id = {}, host = {:?}, port = {}, peer-port = {}",
                    m.id,
                    m.host,
                    m.port,
                    m.peer_port()
                );
                if let Some(z) = &m.zone {
                    let _ = write!(out, ", zone = {z:?}");
                }
                out.push_str(" },\n");
            }
            out.push_str("]\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(n: usize) -> Vec<(String, u16)> {
        (0..n).map(|i| ("127.0.0.1".to_string(), 7000 + i as u16)).collect()
    }

    #[test]
    fn plan_spreads_slots_evenly_and_round_trips() {
        let spec = FleetSpec::plan(&local(9), 2, None).unwrap();
        assert_eq!(spec.shards.len(), 3);
        assert_eq!(spec.shards[0].slots, vec![(0, 5460)]);
        assert_eq!(spec.shards[1].slots, vec![(5461, 10922)]);
        assert_eq!(spec.shards[2].slots, vec![(10923, 16383)]);
        assert_eq!(spec.shards[1].members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![4, 5, 6]);
        let again = FleetSpec::parse(&spec.render(), "test").unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn plan_puts_each_shard_in_distinct_zones() {
        let zones: Vec<String> = ["a", "a", "a", "b", "b", "b", "c", "c", "c"].iter().map(|z| z.to_string()).collect();
        let spec = FleetSpec::plan(&local(9), 2, Some(&zones)).unwrap();
        for shard in &spec.shards {
            let z: HashSet<_> = shard.members.iter().map(|m| m.zone.clone()).collect();
            assert_eq!(z.len(), 3, "shard {} zones {z:?}", shard.id);
        }
        let two_zones: Vec<String> = ["a", "a", "a", "b", "b", "b"].iter().map(|z| z.to_string()).collect();
        let err = FleetSpec::plan(&local(6), 2, Some(&two_zones)).unwrap_err();
        assert!(err.contains("distinct zones"), "{err}");
    }

    #[test]
    fn metadata_voters_sit_on_different_shards_and_zones() {
        let zones: Vec<String> = ["a", "b", "c"].iter().cycle().take(9).map(|z| z.to_string()).collect();
        let spec = FleetSpec::plan(&local(9), 2, Some(&zones)).unwrap();
        assert_eq!(spec.metadata, spec.metadata_voters(), "init writes the voters down");
        let placed: Vec<(u32, Option<String>)> = spec
            .metadata
            .iter()
            .map(|id| spec.members().find(|(_, m)| m.id == *id).map(|(s, m)| (s.id, m.zone.clone())).unwrap())
            .collect();
        assert_eq!(placed.iter().map(|p| p.0).collect::<HashSet<_>>().len(), 3, "{placed:?}");
        assert_eq!(placed.iter().map(|p| p.1.clone()).collect::<HashSet<_>>().len(), 3, "{placed:?}");
        // One shard: its three members; two shards: both shards, three nodes; one node: it.
        assert_eq!(FleetSpec::plan(&local(3), 2, None).unwrap().metadata_voters(), vec![1, 2, 3]);
        assert_eq!(FleetSpec::plan(&local(6), 2, None).unwrap().metadata_voters(), vec![1, 5, 2]);
        assert_eq!(FleetSpec::plan(&local(1), 0, None).unwrap().metadata_voters(), vec![1]);
        // A file's own list wins, and must name members.
        let text = FleetSpec::plan(&local(6), 2, None)
            .unwrap()
            .render()
            .replace("metadata = [1, 5, 2]", "metadata = [4, 6, 3]");
        assert_eq!(FleetSpec::parse(&text, "f").unwrap().metadata_voters(), vec![4, 6, 3]);
        let bad = text.replace("metadata = [4, 6, 3]", "metadata = [4, 6, 30]");
        let e = FleetSpec::parse(&bad, "f").unwrap_err();
        assert!(e.contains("metadata: node id 30 is not a member"), "{e}");
    }

    #[test]
    fn plan_refuses_counts_that_do_not_divide() {
        assert!(FleetSpec::plan(&local(8), 2, None).unwrap_err().contains("do not make shards"));
        assert!(FleetSpec::plan(&[], 0, None).is_err());
    }

    #[test]
    fn parse_names_what_is_wrong() {
        let one = |slots: &str, members: &str| format!("[[shard]]\nid = 1\nslots = [{slots}]\nmembers = [{members}]\n");
        let m = r#"{ id = 1, host = "h", port = 7000 }"#;
        assert!(FleetSpec::parse(&one(r#""0-16383""#, m), "f").is_ok());
        let e = FleetSpec::parse(&one(r#""0-100""#, m), "f").unwrap_err();
        assert!(e.contains("slots 101-16383 belong to no shard"), "{e}");
        let e = FleetSpec::parse(&one(r#""0-16384""#, m), "f").unwrap_err();
        assert!(e.contains("not a slot range"), "{e}");
        let e = FleetSpec::parse(&one(r#""0-16383""#, &format!("{m}, {m}")), "f").unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = FleetSpec::parse(&one(r#""0-16383""#, r#"{ id = 1, host = "h", port = 7000, colour = "red" }"#), "f")
            .unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let two =
            format!("{}{}", one(r#""0-9000""#, m), one(r#""9000-16383""#, r#"{ id = 2, host = "h", port = 7001 }"#))
                .replacen("id = 1\nslots = [\"9000", "id = 2\nslots = [\"9000", 1);
        let e = FleetSpec::parse(&two, "f").unwrap_err();
        assert!(e.contains("slot 9000 is in both"), "{e}");
    }
}
