//! SORT and SORT_RO: parsing Redis's SQL-like options and running the engine's sort
//! (`prism_engine::sort`) on one slot table.
//!
//! Invariants:
//! - Prism is always a cluster node, so `BY` and `GET` patterns follow Redis Cluster 7.4:
//!   a pattern is admitted only when every key it can form is in the sorted key's slot
//!   (`pattern_slot`, Redis's `patternHashSlot`; `GET #` and a `BY` without `*` form no
//!   key). A read therefore locks one slot table and sees one consistent state.
//! - Options are parsed left to right and the first bad one answers, as Redis; the key's
//!   type is checked after the options.
//! - Without STORE the sort is a read. With STORE it is an `Op::SortStore` whose apply
//!   sorts under the write's locks, so the stored list is what the sort saw atomically.
//!   The STORE destination is not in the table's key spec (it moves); it is routed here
//!   and must be served by the same shard as the key, else `-CROSSSLOT`.

use bytes::Bytes;
use prism_engine::sort::{self, pattern_slot, SortSpec};
use prism_engine::{Op, Output, Slot};

use super::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};
use crate::topology::Route;

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };
const COMPLEXITY: &str = "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).";

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "sort",
        arity: -2,
        flags: WRITE | DENYOOM,
        keys: ONE_KEY,
        group: Group::Generic,
        summary: "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        since: "1.0.0",
        complexity: COMPLEXITY,
        handler: Handler::Direct(sort_cmd),
    },
    CommandSpec {
        name: "sort_ro",
        arity: -2,
        flags: READONLY,
        keys: ONE_KEY,
        group: Group::Generic,
        summary: "Returns the sorted elements of a list, a set, or a sorted set.",
        since: "7.0.0",
        complexity: COMPLEXITY,
        handler: Handler::Direct(sort_ro),
    },
];

const BY_DENIED: &str =
    "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.";
const GET_DENIED: &str =
    "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.";

fn sort_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    run(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    run(ctx, args, true)
}

fn run(ctx: &mut Ctx<'_>, args: &[Bytes], readonly: bool) {
    let (spec, store) = match parse(args, readonly) {
        Ok(p) => p,
        Err(e) => return fail(ctx, e),
    };
    let key = &args[1];
    match store {
        Some(dst) => {
            if let Err(e) = same_shard(ctx, key, &dst) {
                return fail(ctx, e);
            }
            ctx.write_then(Op::SortStore { key: key.clone(), dst, spec }, |conn, out, o| match o {
                Output::Err(e) => super::fail(conn, out, e.into()),
                o => out.output(&o),
            });
        }
        None => {
            let now = ctx.now_ms();
            let rows = {
                let table = ctx.node.keyspace.slot(Slot::of_key(key));
                let found = table.get(key, now).is_some();
                sort::run(&table, key, now, &spec, false).map(|rows| (rows, found))
            };
            match rows {
                Ok((rows, found)) => {
                    ctx.hit(found);
                    ctx.out.array(rows.len());
                    for r in &rows {
                        match r {
                            Some(b) => ctx.out.bulk(b),
                            None => ctx.out.null(),
                        }
                    }
                }
                Err(e) => fail(ctx, e.into()),
            }
        }
    }
}

fn fail(ctx: &mut Ctx<'_>, e: CmdError) {
    ctx.conn.errors += 1;
    ctx.out.error(&e.0);
}

/// The options, and the STORE destination if any.
fn parse(args: &[Bytes], readonly: bool) -> CmdResult<(SortSpec, Option<Bytes>)> {
    let key_slot = Slot::of_key(&args[1]);
    let mut spec = SortSpec::new();
    let mut store = None;
    let mut j = 2;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if is(a, "asc") {
            spec.desc = false;
        } else if is(a, "desc") {
            spec.desc = true;
        } else if is(a, "alpha") {
            spec.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            spec.offset = arg_i64(&args[j + 1])?;
            spec.count = arg_i64(&args[j + 2])?;
            j += 2;
        } else if !readonly && is(a, "store") && left >= 1 {
            store = Some(args[j + 1].clone());
            j += 1;
        } else if is(a, "by") && left >= 1 {
            let p = &args[j + 1];
            if !p.contains(&b'*') {
                spec.dont_sort = true;
            } else if pattern_slot(p) != Some(key_slot) {
                return Err(CmdError::msg(BY_DENIED));
            }
            spec.by = Some(p.clone());
            j += 1;
        } else if is(a, "get") && left >= 1 {
            let p = &args[j + 1];
            if &p[..] != b"#" && pattern_slot(p) != Some(key_slot) {
                return Err(CmdError::msg(GET_DENIED));
            }
            spec.gets.push(p.clone());
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    Ok((spec, store))
}

/// The STORE destination must be served by the shard that serves the key.
fn same_shard(ctx: &Ctx<'_>, key: &[u8], dst: &[u8]) -> CmdResult<()> {
    let topology = ctx.node.topology.load();
    match (topology.route(Slot::of_key(key)), topology.route(Slot::of_key(dst))) {
        (Route::Local(a), Route::Local(b)) if a == b => Ok(()),
        _ => Err(CmdError::msg("CROSSSLOT Keys in request don't hash to the same slot")),
    }
}
