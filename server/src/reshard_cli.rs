//! `prism cluster reshard`: moves slots to another shard of a running fleet while clients
//! keep reading and writing.
//!
//! It only starts the move and watches it: for each shard that owns some of the slots it
//! sends `CLUSTER SETSLOT <range> IMPORTING <source>` to the target's leader, then
//! `CLUSTER SETSLOT <range> MIGRATING <target>` to the source's leader; the source's
//! leader moves the keys and hands the slots over by itself (server/src/fleet/mover.rs),
//! surviving leader changes. The command then polls `CLUSTER SLOTS` until the target
//! serves every slot, printing progress, or gives up after `--wait` seconds (the move
//! carries on; re-running the command with the same slots is harmless).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prism_server::client::{Conn, Reply};
use prism_server::fleet::FleetSpec;
use prism_server::replica::cluster_id;

/// Parses `a-b` or `a` into an inclusive range of valid slots.
fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let slot = |t: &str| {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|s| (*s as usize) < prism_engine::SLOT_COUNT)
            .ok_or_else(|| format!("'{t}' is not a slot (0-16383)"))
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (slot(a)?, slot(b)?),
        None => (slot(text)?, slot(text)?),
    };
    if a > b {
        return Err(format!("'{text}': the range ends before it starts"));
    }
    Ok((a, b))
}

/// Groups sorted slots into inclusive ranges.
fn ranges(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some(r) if r.1 + 1 == s => r.1 = s,
            _ => out.push((s, s)),
        }
    }
    out
}

async fn call(addr: &str, args: &[&[u8]]) -> Result<Reply, String> {
    let work = async {
        let mut conn = Conn::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
        conn.call(args).await.map_err(|e| format!("{addr}: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(10), work).await.map_err(|_| format!("{addr}: no answer in time"))?
}

/// Slot -> owning shard id, as `addr` serves CLUSTER SLOTS (masters matched to the spec
/// by node id: every node of a real fleet may use the same port).
async fn slot_owners(spec: &FleetSpec, addr: &str) -> Result<Vec<Option<u32>>, String> {
    let mut owners = vec![None; prism_engine::SLOT_COUNT];
    let Reply::Array(entries) = call(addr, &[b"CLUSTER", b"SLOTS"]).await? else {
        return Err(format!("{addr}: CLUSTER SLOTS did not answer an array"));
    };
    for e in entries {
        let Reply::Array(parts) = e else { continue };
        let (Some(Reply::Int(a)), Some(Reply::Int(b)), Some(Reply::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let Some(Reply::Bulk(id)) = master.get(2) else { continue };
        let id = String::from_utf8_lossy(id);
        let Some(shard) = spec.members().find(|(_, m)| cluster_id(m.id) == id).map(|(s, _)| s.id) else {
            continue;
        };
        for slot in (*a).max(0)..=(*b).min(prism_engine::SLOT_COUNT as i64 - 1) {
            owners[slot as usize] = Some(shard);
        }
    }
    Ok(owners)
}

/// The client address of the member of `shard` that says it leads (INFO raft), if any.
async fn leader(spec: &FleetSpec, shard: u32) -> Option<String> {
    let members = &spec.shards.iter().find(|s| s.id == shard)?.members;
    for m in members {
        let addr = format!("{}:{}", m.host, m.port);
        if let Ok(Reply::Bulk(text)) = call(&addr, &[b"INFO", b"raft"]).await {
            if String::from_utf8_lossy(&text).lines().any(|l| l.trim() == "role:leader") {
                return Some(addr);
            }
        }
    }
    None
}

/// Sends one SETSLOT to `shard`'s leader, retrying while the shard elects one.
async fn setslot(spec: &FleetSpec, shard: u32, range: (u16, u16), sub: &str, node: &str) -> Result<(), String> {
    let range = format!("{}-{}", range.0, range.1);
    let mut last = String::new();
    for _ in 0..20 {
        if let Some(addr) = leader(spec, shard).await {
            match call(&addr, &[b"CLUSTER", b"SETSLOT", range.as_bytes(), sub.as_bytes(), node.as_bytes()]).await {
                Ok(Reply::Ok(_)) => return Ok(()),
                Ok(Reply::Error(e))
                    if !(e.starts_with("MOVED") || e.starts_with("TRYAGAIN") || e.starts_with("READONLY")) =>
                {
                    return Err(format!("shard {shard}: CLUSTER SETSLOT {range} {sub}: {e}"))
                }
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("shard {shard}: CLUSTER SETSLOT {range} {sub} did not succeed: {last}"))
}

pub async fn reshard(spec: &FleetSpec, slots: &[String], to: u32, wait: u64) -> Result<(), String> {
    let mut wanted: Vec<u16> = Vec::new();
    for text in slots {
        let (a, b) = parse_range(text)?;
        wanted.extend(a..=b);
    }
    wanted.sort_unstable();
    wanted.dedup();
    move_slots(spec, &wanted, to, wait).await
}

/// `prism cluster rebalance`: moves slots from the shards holding more than an even
/// share to those holding fewer, one target shard at a time.
pub async fn rebalance(spec: &FleetSpec, wait: u64) -> Result<(), String> {
    let first = spec.shards.first().ok_or("the topology has no shards")?.id;
    let addr = leader(spec, first).await.ok_or_else(|| format!("shard {first} has no leader"))?;
    let owners = slot_owners(spec, &addr).await?;
    let plan = balance(&owners, &spec.shards.iter().map(|s| s.id).collect::<Vec<_>>());
    if plan.is_empty() {
        println!("balanced: nothing to move");
    }
    for (to, slots) in plan {
        move_slots(spec, &slots, to, wait).await?;
    }
    Ok(())
}

/// Which slots go where so that every shard of `shards` holds an even share (the first
/// `16384 % n` shards one more): surplus slots, highest first, to the shards short of
/// their share.
fn balance(owners: &[Option<u32>], shards: &[u32]) -> BTreeMap<u32, Vec<u16>> {
    let n = shards.len().max(1);
    let share = |i: usize| prism_engine::SLOT_COUNT / n + usize::from(i < prism_engine::SLOT_COUNT % n);
    let mut held: BTreeMap<u32, Vec<u16>> = shards.iter().map(|&s| (s, Vec::new())).collect();
    for (slot, owner) in owners.iter().enumerate() {
        if let Some(list) = owner.and_then(|o| held.get_mut(&o)) {
            list.push(slot as u16);
        }
    }
    let mut surplus: Vec<u16> = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let list = held.get_mut(s).expect("every shard listed");
        while list.len() > share(i) {
            surplus.extend(list.pop());
        }
    }
    let mut plan: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
    for (i, s) in shards.iter().enumerate() {
        let short = share(i).saturating_sub(held[s].len());
        let take: Vec<u16> = surplus.drain(..short.min(surplus.len())).collect();
        if !take.is_empty() {
            let mut take = take;
            take.sort_unstable();
            plan.insert(*s, take);
        }
    }
    plan
}

/// Each shard's slot ranges as the fleet serves them now (CLUSTER SLOTS of the first
/// shard leader that answers), or `None` when none does.
pub async fn live_slots(spec: &FleetSpec) -> Option<BTreeMap<u32, Vec<(u16, u16)>>> {
    for shard in &spec.shards {
        let Some(addr) = leader(spec, shard.id).await else { continue };
        let Ok(owners) = slot_owners(spec, &addr).await else { continue };
        let mut by_shard: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
        for (slot, owner) in owners.iter().enumerate() {
            if let Some(o) = owner {
                by_shard.entry(*o).or_default().push(slot as u16);
            }
        }
        return Some(by_shard.into_iter().map(|(s, slots)| (s, ranges(&slots))).collect());
    }
    None
}

/// Moves `wanted` (sorted) to shard `to` and waits until it serves them.
async fn move_slots(spec: &FleetSpec, wanted: &[u16], to: u32, wait: u64) -> Result<(), String> {
    let target = spec.shards.iter().find(|s| s.id == to).ok_or_else(|| format!("--to {to}: no such shard"))?;
    let target_node = cluster_id(target.members.first().ok_or("the target shard has no members")?.id);
    let target_addr = leader(spec, to).await.ok_or_else(|| format!("shard {to} has no leader"))?;
    let owners = slot_owners(spec, &target_addr).await?;
    let mut by_source: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
    for &s in wanted {
        match owners[s as usize] {
            Some(o) if o == to => {}
            Some(o) => by_source.entry(o).or_default().push(s),
            None => return Err(format!("slot {s} is not served by any shard")),
        }
    }
    for (&source, slots) in &by_source {
        let source_spec = spec.shards.iter().find(|s| s.id == source).ok_or("unknown source shard")?;
        let source_node = cluster_id(source_spec.members.first().ok_or("the source shard has no members")?.id);
        for &range in &ranges(slots) {
            setslot(spec, to, range, "IMPORTING", &source_node).await?;
            setslot(spec, source, range, "MIGRATING", &target_node).await?;
        }
        println!("shard {source} -> shard {to}: {} slots migrating", slots.len());
    }
    let total = by_source.values().map(Vec::len).sum::<usize>();
    let started = Instant::now();
    let mut last_done = usize::MAX;
    loop {
        let done = match leader(spec, to).await {
            Some(addr) => match slot_owners(spec, &addr).await {
                Ok(owners) => by_source.values().flatten().filter(|&&s| owners[s as usize] == Some(to)).count(),
                Err(_) => 0,
            },
            None => 0,
        };
        if done != last_done {
            println!("{done}/{total} slots served by shard {to} ({:.1} s)", started.elapsed().as_secs_f64());
            last_done = done;
        }
        if done == total {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(wait) {
            return Err(format!("{done}/{total} slots moved after {wait} s; the move carries on in the fleet"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_arguments() {
        assert_eq!(parse_range("5"), Ok((5, 5)));
        assert_eq!(parse_range("0-99"), Ok((0, 99)));
        assert!(parse_range("99-0").is_err());
        assert!(parse_range("16384").is_err());
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), vec![(1, 3), (7, 7), (9, 10)]);
    }

    #[test]
    fn rebalance_plans_an_even_spread() {
        // Shard 1 holds 0-12287, shard 2 the rest, shard 3 nothing.
        let owners: Vec<Option<u32>> = (0..16384).map(|s| Some(if s < 12288 { 1 } else { 2 })).collect();
        let plan = balance(&owners, &[1, 2, 3]);
        // Shares: 5462, 5461, 5461. Shard 1 gives 6826: 1365 to shard 2, 5461 to shard 3.
        assert_eq!(plan.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!((plan[&2].len(), plan[&3].len()), (1365, 5461));
        assert!(plan.values().flatten().all(|&s| (5462..12288).contains(&s)), "only shard 1's surplus moves");
        let balanced: Vec<Option<u32>> = (0..16384).map(|s| Some([1, 2, 3][s * 3 / 16384])).collect();
        assert!(balance(&balanced, &[1, 2, 3]).values().all(|v| v.len() <= 1));
    }
}
