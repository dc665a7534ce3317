//! SLOWLOG and LATENCY: read and reset what `stats` recorded.

use bytes::Bytes;

use super::{error, help};
use crate::cmd::{arg_i64, text, Ctx};

// ---- SLOWLOG ----------------------------------------------------------------------

pub(super) fn slowlog_get(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let count = match args.len() {
        2 => 10,
        3 => match arg_i64(&args[2]) {
            Ok(-1) => usize::MAX,
            Ok(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return error(ctx, "ERR count should be greater than or equal to -1"),
        },
        _ => {
            let msg = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                text(&args[1])
            );
            return error(ctx, &msg);
        }
    };
    let entries = ctx.node.cmd_stats.slowlog_get(count);
    let out = &mut *ctx.out;
    out.array(entries.len());
    for e in &entries {
        out.array(6);
        out.int(e.id as i64);
        out.int(e.time as i64);
        out.int(e.usec as i64);
        out.bulks(e.args.iter().map(|a| &a[..]));
        out.bulk(e.addr.as_bytes());
        out.bulk(&e.name);
    }
}

pub(super) fn slowlog_len(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.out.int(ctx.node.cmd_stats.slowlog_len() as i64);
}

pub(super) fn slowlog_reset(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.node.cmd_stats.slowlog_reset();
    ctx.out.ok();
}

pub(super) fn slowlog_help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    help(
        ctx,
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
}

// ---- LATENCY ----------------------------------------------------------------------

pub(super) fn latency_latest(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let events = ctx.node.cmd_stats.latency_events();
    let out = &mut *ctx.out;
    out.array(events.len());
    for (name, series) in &events {
        let (time, ms) = series.samples.back().copied().unwrap_or((0, 0));
        out.array(4);
        out.bulk(name.as_bytes());
        out.int(time as i64);
        out.int(ms as i64);
        out.int(series.max as i64);
    }
}

pub(super) fn latency_history(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let events = ctx.node.cmd_stats.latency_events();
    let samples = events.iter().find(|(name, _)| name.as_bytes() == &args[2][..]).map(|(_, s)| &s.samples);
    let out = &mut *ctx.out;
    let Some(samples) = samples else { return out.array(0) };
    out.array(samples.len());
    for &(time, ms) in samples {
        out.array(2);
        out.int(time as i64);
        out.int(ms as i64);
    }
}

/// `LATENCY HISTOGRAM [command ...]` (Redis 7): per command, its calls and a cumulative
/// histogram keyed by powers of two in microseconds, only the buckets that hold calls (as
/// Redis lists them). A container's name stands for all its subcommands (`client` ->
/// `client|list`, ...); unknown or never called names are left out.
pub(super) fn latency_histogram(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ctx.node.cmd_stats.publish(&mut ctx.conn.cmd_stats);
    let wanted = |name: &str| {
        args.len() == 2
            || args[2..].iter().any(|a| {
                let a = a.as_ref();
                let n = name.as_bytes();
                n.eq_ignore_ascii_case(a)
                    || (n.len() > a.len() && n[a.len()] == b'|' && n[..a.len()].eq_ignore_ascii_case(a))
            })
    };
    let all: Vec<_> = ctx.node.cmd_stats.latencies().into_iter().filter(|(name, _)| wanted(name)).collect();
    let out = &mut *ctx.out;
    out.map(all.len());
    for (name, h) in &all {
        out.bulk(name.as_bytes());
        out.map(2);
        out.bulk(b"calls");
        out.int(h.count() as i64);
        out.bulk(b"histogram_usec");
        let buckets = h.by_power_of_two();
        // The +Inf bucket is keyed by the power of two above the last finite bound.
        let beyond = buckets.len().checked_sub(2).map_or(0, |i| buckets[i].0 * 2);
        out.map(buckets.iter().filter(|b| b.1 > 0).count());
        let mut cumulative = 0;
        for &(bound, n) in buckets.iter().filter(|b| b.1 > 0) {
            cumulative += n;
            out.int(if bound == u64::MAX { beyond } else { bound } as i64);
            out.int(cumulative as i64);
        }
    }
}

pub(super) fn latency_reset(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let n = ctx.node.cmd_stats.latency_reset(&args[2..]);
    ctx.out.int(n as i64);
}

pub(super) fn latency_help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    help(
        ctx,
        "LATENCY",
        &[
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
}
