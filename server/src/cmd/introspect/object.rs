//! OBJECT and MEMORY: what a key's value looks like to Redis tools — its encoding by
//! Redis 7.2's thresholds, and its bytes by the engine's own accounting (see the parent
//! module's invariants).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use prism_engine::list::{Elem, ListValue};
use prism_engine::num::parse_i64;
use prism_engine::value::ENTRY_OVERHEAD;
use prism_engine::Value;

use super::{error, help};
use crate::cmd::{arg_i64, is, CmdError, Ctx};

// ---- OBJECT -----------------------------------------------------------------------

/// Redis 7.2's built-in conversion thresholds (`*-max-listpack-*`, `set-max-intset-entries`,
/// `list-max-listpack-size -2`): what a redis-server started without a config file uses.
/// (The sample redis.conf lowers `hash-max-listpack-entries` to 128.)
const LISTPACK_ENTRIES: usize = 128;
const HASH_LISTPACK_ENTRIES: usize = 512;
const LISTPACK_VALUE: usize = 64;
const INTSET_ENTRIES: usize = 512;
const LIST_LISTPACK_BYTES: usize = 8192;
/// Longest string Redis stores as `embstr`.
const EMBSTR_MAX: usize = 44;
/// Integers Redis keeps as shared objects (`OBJ_SHARED_INTEGERS`), whose OBJECT REFCOUNT
/// is `OBJ_SHARED_REFCOUNT`.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// The encoding Redis 7.2 would report for a value of this content, by its default
/// thresholds. Redis converts small encodings to big ones as a value grows and (except
/// for lists) never back, and strings written by APPEND/SETRANGE stay `raw`; Prism
/// answers from the value as it is now, so a collection that shrank below a threshold,
/// or a short appended string, reports the small encoding where Redis would not. A graph
/// vertex reports `adjacency`: its edge lists, kept per type in rank order.
pub fn encoding(v: &Value) -> &'static str {
    match v {
        Value::Str(s) if s.len() <= 20 && parse_i64(s).is_some() => "int",
        Value::Str(s) if s.len() <= EMBSTR_MAX => "embstr",
        Value::Str(_) => "raw",
        Value::Hash(h)
            if h.len() <= HASH_LISTPACK_ENTRIES && h.iter().all(|(f, v)| f.len().max(v.len()) <= LISTPACK_VALUE) =>
        {
            "listpack"
        }
        Value::Hash(_) => "hashtable",
        Value::Set(s) if s.len() <= INTSET_ENTRIES && s.iter().all(|m| parse_i64(m).is_some()) => "intset",
        Value::Set(s) if small(s.len(), s.iter().map(<[u8]>::len)) => "listpack",
        Value::Set(_) => "hashtable",
        Value::ZSet(z) if small(z.len(), z.iter().map(|(m, _)| m.len())) => "listpack",
        Value::ZSet(_) => "skiplist",
        Value::List(l) if fits_one_listpack(l) => "listpack",
        Value::List(_) => "quicklist",
        Value::Vertex(_) => "adjacency",
    }
}

/// True when a collection of `len` entries whose longest parts are `lens` stays a
/// listpack (at most 128 entries of at most 64 bytes).
fn small(len: usize, mut lens: impl Iterator<Item = usize>) -> bool {
    len <= LISTPACK_ENTRIES && lens.all(|l| l <= LISTPACK_VALUE)
}

/// True when the list's elements, encoded as a Redis listpack encodes them, take at most
/// [`LIST_LISTPACK_BYTES`]. Stops as soon as the bound is passed.
fn fits_one_listpack(l: &ListValue) -> bool {
    // Every entry takes at least 2 bytes; a listpack has a 6-byte header and an end byte.
    if l.len().saturating_mul(2) + 7 > LIST_LISTPACK_BYTES {
        return false;
    }
    let mut bytes = 7usize;
    for e in l.iter() {
        let data = match e {
            Elem::Int(n) => lp_int_len(n),
            Elem::Bytes(b) if b.len() < 64 => 1 + b.len(),
            Elem::Bytes(b) if b.len() < 4096 => 2 + b.len(),
            Elem::Bytes(b) => 5 + b.len(),
        };
        bytes += data + lp_backlen_len(data);
        if bytes > LIST_LISTPACK_BYTES {
            return false;
        }
    }
    true
}

fn lp_int_len(n: i64) -> usize {
    match n {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32_768..=32_767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

fn lp_backlen_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Runs `f` on the value under the key at `args[2]`, or replies null (as Redis's OBJECT
/// does for a missing key).
fn with_value(ctx: &mut Ctx<'_>, args: &[Bytes], f: impl FnOnce(&mut Ctx<'_>, &Value)) {
    let now = ctx.now_ms();
    let node = ctx.node;
    node.keyspace.get(&args[2], now, |e| {
        ctx.hit(e.is_some());
        match e {
            Some(e) => f(ctx, &e.value),
            None => ctx.out.null(),
        }
    })
}

pub(super) fn object_encoding(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    with_value(ctx, args, |ctx, v| ctx.out.bulk(encoding(v).as_bytes()));
}

pub(super) fn object_freq(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    with_value(ctx, args, |ctx, _| {
        error(
            ctx,
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )
    });
}

pub(super) fn object_idletime(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    with_value(ctx, args, |ctx, _| error(ctx, "ERR Prism does not track key access times, idle time not available."));
}

pub(super) fn object_refcount(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    with_value(ctx, args, |ctx, v| {
        let shared = matches!(v, Value::Str(s) if s.len() <= 20
            && parse_i64(s).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n)));
        ctx.out.int(if shared { SHARED_REFCOUNT } else { 1 });
    });
}

pub(super) fn object_help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    help(
        ctx,
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    );
}

// ---- MEMORY -----------------------------------------------------------------------

pub(super) fn memory_usage(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    // SAMPLES is checked as Redis checks it, then not needed: the engine's accounting is
    // exact for every value, so nothing is sampled.
    let mut j = 3;
    while j < args.len() {
        if is(&args[j], "samples") && j + 1 < args.len() {
            match arg_i64(&args[j + 1]) {
                Ok(n) if n < 0 => return error(ctx, &CmdError::SYNTAX.0),
                Ok(_) => {}
                Err(e) => return error(ctx, &e.0),
            }
            j += 2;
        } else {
            return error(ctx, &CmdError::SYNTAX.0);
        }
    }
    let now = ctx.now_ms();
    let usage = ctx.node.keyspace.get(&args[2], now, |e| e.map(|e| e.mem(args[2].len())));
    match usage {
        Some(n) => ctx.out.int(n as i64),
        None => ctx.out.null(),
    }
}

pub(super) fn memory_stats(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let node = ctx.node;
    let used = node.keyspace.used_memory();
    let peak = node.stats.used_memory_peak.fetch_max(used, Ordering::Relaxed).max(used);
    let keys = node.keyspace.key_count();
    // The engine charges ENTRY_OVERHEAD per key for its table; the rest is keys and values.
    let overhead = keys.saturating_mul(ENTRY_OVERHEAD as u64).min(used);
    let dataset = used - overhead;
    let percent = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 };
    let out = &mut *ctx.out;
    out.map(9);
    for (name, n) in [("peak.allocated", peak), ("total.allocated", used)] {
        out.bulk(name.as_bytes());
        out.int(n as i64);
    }
    out.bulk(b"db.0");
    out.map(2);
    out.bulk(b"overhead.hashtable.main");
    out.int(overhead as i64);
    // Deadlines live in the entries: there is no separate expires table.
    out.bulk(b"overhead.hashtable.expires");
    out.int(0);
    for (name, n) in [
        ("overhead.total", overhead),
        ("keys.count", keys),
        ("keys.bytes-per-key", used.checked_div(keys).unwrap_or(0)),
        ("dataset.bytes", dataset),
    ] {
        out.bulk(name.as_bytes());
        out.int(n as i64);
    }
    out.bulk(b"dataset.percentage");
    out.double(percent(dataset, used));
    out.bulk(b"peak.percentage");
    out.double(percent(used, peak));
}

/// Below this much data Redis's doctor declines to diagnose, and so does Prism's.
const DOCTOR_MIN_BYTES: u64 = 5 << 20;

pub(super) fn memory_doctor(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let text = if ctx.node.keyspace.used_memory() < DOCTOR_MIN_BYTES {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
    };
    ctx.out.verbatim(text);
}

pub(super) fn memory_malloc_stats(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    // What Redis answers when built without jemalloc.
    ctx.out.verbatim("Stats not supported for the current allocator");
}

pub(super) fn memory_purge(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.out.ok();
}

pub(super) fn memory_help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    help(
        ctx,
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_entry_sizes() {
        assert_eq!(lp_int_len(127), 1);
        assert_eq!(lp_int_len(128), 2);
        assert_eq!(lp_int_len(-4096), 2);
        assert_eq!(lp_int_len(40_000), 4);
        assert_eq!(lp_int_len(i64::MAX), 9);
        assert_eq!(lp_backlen_len(127), 1);
        assert_eq!(lp_backlen_len(128), 2);
    }

    #[test]
    fn list_encoding_switches_at_8kb() {
        let mut l = ListValue::default();
        // A 10-byte string takes 12 bytes: 7 + 12 * 682 = 8191.
        for _ in 0..682 {
            l.push_back(b"abcdefghij");
        }
        assert_eq!(encoding(&Value::List(Box::new(l.clone()))), "listpack");
        l.push_back(b"abcdefghij");
        assert_eq!(encoding(&Value::List(Box::new(l))), "quicklist");
    }

    #[test]
    fn string_encodings() {
        let s = |v: &[u8]| encoding(&Value::Str(v.into()));
        assert_eq!(s(b"12345"), "int");
        assert_eq!(s(b"-9223372036854775808"), "int");
        assert_eq!(s(b"012"), "embstr");
        assert_eq!(s(&[b'a'; 44]), "embstr");
        assert_eq!(s(&[b'a'; 45]), "raw");
    }
}
