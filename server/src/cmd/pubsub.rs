//! Pub/sub commands: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB
//! SSUBSCRIBE SUNSUBSCRIBE SPUBLISH.
//!
//! A connection gets its [`Subscriber`] on its first subscription; delivery happens in
//! the connection loop (`conn.rs`), through a queue bounded by
//! `client-output-buffer-limit pubsub` (see `pubsub.rs`). Confirmation replies are push
//! frames in RESP3 and arrays in RESP2, one per channel, as Redis sends them. In RESP2 a
//! subscribed connection may only run the commands Redis allows in that context (checked
//! in `cmd::execute`).

use bytes::Bytes;

use super::{container_help, Ctx};
use crate::pubsub::{Kind, Subscriber};
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const fn ps(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    since: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        group: Group::PubSub,
        summary,
        since,
        complexity: "O(N) where N is the number of channels",
        handler: Handler::Direct(f),
    }
}

const SUB_FLAGS: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;
const SHARD_KEYS: KeySpec = KeySpec::Range { first: 1, last: -1, step: 1 };

pub const COMMANDS: &[CommandSpec] = &[
    ps("subscribe", -2, SUB_FLAGS, KeySpec::None, "Listens for messages published to channels.", "2.0.0", subscribe),
    ps(
        "unsubscribe",
        -1,
        SUB_FLAGS,
        KeySpec::None,
        "Stops listening to messages posted to channels.",
        "2.0.0",
        unsubscribe,
    ),
    ps(
        "psubscribe",
        -2,
        SUB_FLAGS,
        KeySpec::None,
        "Listens for messages published to channels that match one or more patterns.",
        "2.0.0",
        psubscribe,
    ),
    ps(
        "punsubscribe",
        -1,
        SUB_FLAGS,
        KeySpec::None,
        "Stops listening to messages published to channels that match one or more patterns.",
        "2.0.0",
        punsubscribe,
    ),
    ps(
        "ssubscribe",
        -2,
        SUB_FLAGS,
        SHARD_KEYS,
        "Listens for messages published to shard channels.",
        "7.0.0",
        ssubscribe,
    ),
    ps(
        "sunsubscribe",
        -1,
        SUB_FLAGS,
        SHARD_KEYS,
        "Stops listening to messages posted to shard channels.",
        "7.0.0",
        sunsubscribe,
    ),
    ps(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        KeySpec::None,
        "Posts a message to a channel.",
        "2.0.0",
        publish,
    ),
    ps(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        KeySpec::Range { first: 1, last: 1, step: 1 },
        "Post a message to a shard channel",
        "7.0.0",
        spublish,
    ),
    CommandSpec {
        name: "pubsub",
        arity: -2,
        flags: 0,
        keys: KeySpec::None,
        group: Group::PubSub,
        summary: "A container for Pub/Sub commands.",
        since: "2.8.0",
        complexity: "Depends on subcommand.",
        handler: Handler::Container(PUBSUB_SUBCOMMANDS),
    },
];

const INTROSPECT: u32 = PUBSUB | LOADING | STALE;

const PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    ps("channels", -2, INTROSPECT, KeySpec::None, "Returns the active channels.", "2.8.0", channels),
    ps("numsub", -2, INTROSPECT, KeySpec::None, "Returns a count of subscribers to channels.", "2.8.0", numsub),
    ps("numpat", 2, INTROSPECT, KeySpec::None, "Returns a count of unique pattern subscriptions.", "2.8.0", numpat),
    ps("shardchannels", -2, INTROSPECT, KeySpec::None, "Returns the active shard channels.", "7.0.0", shardchannels),
    ps(
        "shardnumsub",
        -2,
        INTROSPECT,
        KeySpec::None,
        "Returns the count of subscribers of shard channels.",
        "7.0.0",
        shardnumsub,
    ),
    ps(
        "help",
        2,
        LOADING | STALE,
        KeySpec::None,
        "Returns helpful text about the different subcommands.",
        "6.2.0",
        help,
    ),
];

fn subscriber<'a>(ctx: &'a mut Ctx<'_>) -> &'a mut Subscriber {
    let node_pubsub = ctx.node.pubsub.clone();
    let handle = ctx.conn.handle.clone();
    ctx.conn.subscriber.get_or_insert_with(|| node_pubsub.subscriber(handle))
}

/// The reply Redis sends per channel: [kind, channel, count].
fn confirm(ctx: &mut Ctx<'_>, word: &str, name: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(word.as_bytes());
    match name {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

fn count_for(sub: &Subscriber, kind: Kind) -> usize {
    match kind {
        Kind::Shard => sub.count_of(Kind::Shard),
        _ => sub.count(),
    }
}

fn do_subscribe(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind, word: &str) {
    for name in &args[1..] {
        let sub = subscriber(ctx);
        sub.subscribe(kind, name);
        let count = count_for(sub, kind);
        confirm(ctx, word, Some(name), count);
    }
}

fn do_unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind, word: &str) {
    let names: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ctx.conn.subscriber.as_ref().map(|s| s.names(kind)).unwrap_or_default()
    };
    if names.is_empty() {
        let count = ctx.conn.subscriber.as_ref().map_or(0, |s| count_for(s, kind));
        return confirm(ctx, word, None, count);
    }
    for name in &names {
        let count = match ctx.conn.subscriber.as_mut() {
            Some(sub) => {
                sub.unsubscribe(kind, name);
                count_for(sub, kind)
            }
            None => 0,
        };
        confirm(ctx, word, Some(name), count);
    }
    if ctx.conn.subscriber.as_ref().is_some_and(Subscriber::is_empty) {
        ctx.conn.subscriber = None;
    }
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_subscribe(ctx, args, Kind::Channel, "subscribe");
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_unsubscribe(ctx, args, Kind::Channel, "unsubscribe");
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_subscribe(ctx, args, Kind::Pattern, "psubscribe");
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_unsubscribe(ctx, args, Kind::Pattern, "punsubscribe");
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_subscribe(ctx, args, Kind::Shard, "ssubscribe");
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_unsubscribe(ctx, args, Kind::Shard, "sunsubscribe");
}

fn do_publish(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) {
    let limit = ctx.node.limits.output.read().pubsub;
    let n = ctx.node.pubsub.publish(kind, &args[1], &args[2], limit);
    ctx.out.int(n as i64);
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_publish(ctx, args, Kind::Channel);
}

fn spublish(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    do_publish(ctx, args, Kind::Shard);
}

fn list_channels(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) {
    if args.len() > 3 {
        return ctx.out.error(&format!(
            "ERR wrong number of arguments for 'pubsub|{}' command",
            args[1].to_ascii_lowercase().escape_ascii()
        ));
    }
    let mut names = ctx.node.pubsub.active(kind, args.get(2).map(|p| &p[..]));
    names.sort();
    ctx.out.bulks(names.iter().map(|n| &n[..]));
}

fn channels(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    list_channels(ctx, args, Kind::Channel);
}

fn shardchannels(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    list_channels(ctx, args, Kind::Shard);
}

fn counts(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) {
    let names = &args[2..];
    ctx.out.array(names.len() * 2);
    for n in names {
        ctx.out.bulk(n);
        ctx.out.int(ctx.node.pubsub.count(kind, n) as i64);
    }
}

fn numsub(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    counts(ctx, args, Kind::Channel);
}

fn shardnumsub(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    counts(ctx, args, Kind::Shard);
}

fn numpat(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.out.int(ctx.node.pubsub.pattern_count() as i64);
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    container_help(ctx, "pubsub");
}

/// Commands a RESP2 client may run while subscribed (Redis's list).
pub fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}
