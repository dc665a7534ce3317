//! Sorted-set commands: ZADD ZINCRBY ZREM ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANGE
//! ZRANGESTORE ZREVRANGE Z[REV]RANGEBYSCORE Z[REV]RANGEBYLEX ZRANK ZREVRANK ZPOPMIN
//! ZPOPMAX ZMPOP ZRANDMEMBER ZREMRANGEBY{RANK,SCORE,LEX} ZUNION ZINTER ZDIFF and their
//! STORE forms, ZSCAN.
//!
//! Invariants:
//! - Writes become `ZSetOp`s with every option fixed; the engine deletes a sorted set with
//!   its last member, so no command here sees an empty one.
//! - Arguments are checked in Redis's order (options, then numbers, then the key's type),
//!   so the same bad request gets the same error word.
//! - Scores print through `ReplyWriter::double` (Redis 7.2's `d2string`): a bulk string in
//!   RESP2, a double in RESP3. WITHSCORES replies are flat in RESP2 and `[member, score]`
//!   pairs in RESP3, as Redis 7 sends them.
//! - Reads run under the slot's read lock and write their reply while holding it.

mod read;
mod write;

pub(crate) use write::min_or_max;

use bytes::Bytes;
use prism_engine::zset::ZSetValue;
use prism_engine::{Entry, Value};

use super::{CmdError, CmdResult, Ctx};
use crate::resp::ReplyWriter;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const ONE_KEY: KeySpec = KeySpec::Range { first: 1, last: 1, step: 1 };
const TWO_KEYS: KeySpec = KeySpec::Range { first: 1, last: 2, step: 1 };
const NUMKEYS_AT_1: KeySpec = KeySpec::Keynum { numkeys_index: 1, first: 2, step: 1 };
/// The *STORE forms: destination at 1 (checked by the handler), numkeys at 2.
const NUMKEYS_AT_2: KeySpec = KeySpec::Keynum { numkeys_index: 2, first: 3, step: 1 };

#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec { name, arity, flags, keys, group: Group::SortedSet, summary, since, complexity, handler }
}

const LOG_N: &str = "O(log(N))";
const RANGE: &str =
    "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.";
const STORE: &str = "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.";

pub const COMMANDS: &[CommandSpec] = &[
    spec("zadd", -4, WRITE | DENYOOM | FAST, ONE_KEY, "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", "1.2.0", LOG_N, Handler::Write(write::zadd)),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, ONE_KEY, "Increments the score of a member in a sorted set.", "1.2.0", LOG_N, Handler::Write(write::zincrby)),
    spec("zrem", -3, WRITE | FAST, ONE_KEY, "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", "1.2.0", LOG_N, Handler::Write(write::zrem)),
    spec("zscore", 3, READONLY | FAST, ONE_KEY, "Returns the score of a member in a sorted set.", "1.2.0", "O(1)", Handler::Direct(read::zscore)),
    spec("zmscore", -3, READONLY | FAST, ONE_KEY, "Returns the score of one or more members in a sorted set.", "6.2.0", "O(N)", Handler::Direct(read::zmscore)),
    spec("zcard", 2, READONLY | FAST, ONE_KEY, "Returns the number of members in a sorted set.", "1.2.0", "O(1)", Handler::Direct(read::zcard)),
    spec("zcount", 4, READONLY | FAST, ONE_KEY, "Returns the count of members in a sorted set that have scores within a range.", "2.0.0", LOG_N, Handler::Direct(read::zcount)),
    spec("zlexcount", 4, READONLY | FAST, ONE_KEY, "Returns the number of members in a sorted set within a lexicographical range.", "2.8.9", LOG_N, Handler::Direct(read::zlexcount)),
    spec("zrange", -4, READONLY, ONE_KEY, "Returns members in a sorted set within a range of indexes.", "1.2.0", RANGE, Handler::Direct(read::zrange)),
    spec("zrangestore", -5, WRITE | DENYOOM, TWO_KEYS, "Stores a range of members from sorted set in a key.", "6.2.0", RANGE, Handler::Write(write::zrangestore)),
    spec("zrevrange", -4, READONLY, ONE_KEY, "Returns members in a sorted set within a range of indexes in reverse order.", "1.2.0", RANGE, Handler::Direct(read::zrevrange)),
    spec("zrangebyscore", -4, READONLY, ONE_KEY, "Returns members in a sorted set within a range of scores.", "1.0.5", RANGE, Handler::Direct(read::zrangebyscore)),
    spec("zrevrangebyscore", -4, READONLY, ONE_KEY, "Returns members in a sorted set within a range of scores in reverse order.", "2.2.0", RANGE, Handler::Direct(read::zrevrangebyscore)),
    spec("zrangebylex", -4, READONLY, ONE_KEY, "Returns members in a sorted set within a lexicographical range.", "2.8.9", RANGE, Handler::Direct(read::zrangebylex)),
    spec("zrevrangebylex", -4, READONLY, ONE_KEY, "Returns members in a sorted set within a lexicographical range in reverse order.", "2.8.9", RANGE, Handler::Direct(read::zrevrangebylex)),
    spec("zrank", -3, READONLY | FAST, ONE_KEY, "Returns the index of a member in a sorted set ordered by ascending scores.", "2.0.0", LOG_N, Handler::Direct(read::zrank)),
    spec("zrevrank", -3, READONLY | FAST, ONE_KEY, "Returns the index of a member in a sorted set ordered by descending scores.", "2.0.0", LOG_N, Handler::Direct(read::zrevrank)),
    spec("zpopmin", -2, WRITE | FAST, ONE_KEY, "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.", Handler::Direct(write::zpopmin)),
    spec("zpopmax", -2, WRITE | FAST, ONE_KEY, "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.", Handler::Direct(write::zpopmax)),
    spec("zmpop", -4, WRITE, NUMKEYS_AT_1, "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", "7.0.0", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.", Handler::Direct(write::zmpop)),
    spec("zrandmember", -2, READONLY, ONE_KEY, "Returns one or more random members from a sorted set.", "6.2.0", "O(N) where N is the number of members returned", Handler::Direct(read::zrandmember)),
    spec("zremrangebyrank", 4, WRITE, ONE_KEY, "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", "2.0.0", RANGE, Handler::Write(write::zremrangebyrank)),
    spec("zremrangebyscore", 4, WRITE, ONE_KEY, "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", "1.2.0", RANGE, Handler::Write(write::zremrangebyscore)),
    spec("zremrangebylex", 4, WRITE, ONE_KEY, "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", "2.8.9", RANGE, Handler::Write(write::zremrangebylex)),
    spec("zunion", -3, READONLY, NUMKEYS_AT_1, "Returns the union of multiple sorted sets.", "6.2.0", STORE, Handler::Direct(read::zunion)),
    spec("zinter", -3, READONLY, NUMKEYS_AT_1, "Returns the intersect of multiple sorted sets.", "6.2.0", STORE, Handler::Direct(read::zinter)),
    spec("zdiff", -3, READONLY, NUMKEYS_AT_1, "Returns the difference between multiple sorted sets.", "6.2.0", STORE, Handler::Direct(read::zdiff)),
    spec("zunionstore", -4, WRITE | DENYOOM, NUMKEYS_AT_2, "Stores the union of multiple sorted sets in a key.", "2.0.0", STORE, Handler::Write(write::zunionstore)),
    spec("zinterstore", -4, WRITE | DENYOOM, NUMKEYS_AT_2, "Stores the intersect of multiple sorted sets in a key.", "2.0.0", STORE, Handler::Write(write::zinterstore)),
    spec("zdiffstore", -4, WRITE | DENYOOM, NUMKEYS_AT_2, "Stores the difference of multiple sorted sets in a key.", "6.2.0", STORE, Handler::Write(write::zdiffstore)),
    spec("zscan", -3, READONLY, ONE_KEY, "Iterates over members and scores of a sorted set.", "2.8.0", "O(1) for every call. O(N) for a complete iteration.", Handler::Direct(read::zscan)),
];

/// Runs `f` on the zset under `key`, as [`Ctx::read_typed`].
fn read_zset(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&mut ReplyWriter, Option<&ZSetValue>) -> CmdResult<()>) {
    ctx.read_typed(
        key,
        |v| match v {
            Value::ZSet(x) => Some(&**x),
            _ => None,
        },
        f,
    );
}

/// Writes members with or without scores: flat in RESP2, `[member, score]` pairs in RESP3.
fn write_members(out: &mut ReplyWriter, items: &[(&[u8], f64)], withscores: bool) {
    let pairs = withscores && out.is_resp3();
    out.array(if withscores && !pairs { 2 * items.len() } else { items.len() });
    for (m, s) in items {
        if pairs {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(*s);
        }
    }
}

/// The flat `[member, score, ...]` output of a pop, rendered flat or (RESP3 with a count)
/// as pairs.
fn write_popped(out: &mut ReplyWriter, items: &[prism_engine::Output], nested: bool) {
    let pairs = nested && out.is_resp3();
    out.array(if pairs { items.len() / 2 } else { items.len() });
    for pair in items.chunks(2) {
        if pairs {
            out.array(2);
        }
        pair.iter().for_each(|o| out.output(o));
    }
}

/// The keys and options of ZUNION / ZINTER / ZDIFF and their STORE forms, checked in
/// Redis's order: numkeys, then the keys' types, then WEIGHTS / AGGREGATE / WITHSCORES.
struct Combination {
    keys: Vec<Bytes>,
    weights: Vec<f64>,
    aggregate: prism_engine::zset::Aggregate,
    withscores: bool,
}

fn parse_combination(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    numkeys_index: usize,
    kind: prism_engine::zset::Combine,
    store: bool,
) -> CmdResult<Combination> {
    use prism_engine::zset::{Aggregate, Combine};
    let numkeys = super::arg_i64(&args[numkeys_index])?;
    if numkeys < 1 {
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{}' command",
            text_lower(&args[0])
        )));
    }
    let first = numkeys_index + 1;
    if numkeys as u64 > (args.len() - first) as u64 {
        return Err(CmdError::SYNTAX);
    }
    let keys: Vec<Bytes> = args[first..first + numkeys as usize].to_vec();
    let now = ctx.now_ms();
    for k in &keys {
        let ok = ctx
            .node
            .keyspace
            .get(k, now, |e| matches!(e, None | Some(Entry { value: Value::ZSet(_) | Value::Set(_), .. })));
        if !ok {
            return Err(CmdError::WRONGTYPE);
        }
    }
    let mut c = Combination { weights: Vec::new(), aggregate: Aggregate::Sum, withscores: false, keys };
    let mut j = first + c.keys.len();
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if kind != Combine::Diff && remaining > c.keys.len() && super::is(a, "WEIGHTS") {
            c.weights = args[j + 1..j + 1 + c.keys.len()]
                .iter()
                .map(|w| prism_engine::zset::parse_score(w).ok_or(CmdError::msg("ERR weight value is not a float")))
                .collect::<CmdResult<_>>()?;
            j += 1 + c.keys.len();
        } else if kind != Combine::Diff && remaining >= 2 && super::is(a, "AGGREGATE") {
            let w = &args[j + 1];
            c.aggregate = if super::is(w, "SUM") {
                Aggregate::Sum
            } else if super::is(w, "MIN") {
                Aggregate::Min
            } else if super::is(w, "MAX") {
                Aggregate::Max
            } else {
                return Err(CmdError::SYNTAX);
            };
            j += 2;
        } else if !store && super::is(a, "WITHSCORES") {
            c.withscores = true;
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    Ok(c)
}

fn text_lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}
