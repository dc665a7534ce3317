//! Connection commands: PING ECHO QUIT RESET HELLO AUTH SELECT READONLY READWRITE.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{arg_i64, is, CmdError, CmdResult, Ctx};
use crate::resp::Proto;
use crate::table::{flag::*, CommandSpec, Group, Handler, KeySpec};

const fn conn_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    f: fn(&mut Ctx<'_>, &[Bytes]),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys: KeySpec::None,
        group: Group::Connection,
        summary,
        since: "1.0.0",
        complexity: "O(1)",
        handler: Handler::Direct(f),
    }
}

pub const COMMANDS: &[CommandSpec] = &[
    conn_cmd("ping", -1, FAST | STALE | LOADING, "Returns the server's liveliness response.", ping),
    conn_cmd("echo", 2, FAST | STALE | LOADING, "Returns the given string.", echo),
    conn_cmd("quit", -1, FAST | STALE | LOADING | NO_AUTH | ALLOW_BUSY, "Closes the connection.", quit),
    conn_cmd("reset", 1, FAST | STALE | LOADING | NO_AUTH | ALLOW_BUSY, "Resets the connection.", reset),
    conn_cmd("hello", -1, FAST | STALE | LOADING | NO_AUTH | ALLOW_BUSY, "Handshakes with the server.", hello),
    conn_cmd("auth", -2, FAST | STALE | LOADING | NO_AUTH | ALLOW_BUSY, "Authenticates the connection.", auth),
    conn_cmd("select", 2, FAST | STALE | LOADING, "Changes the selected database.", select),
    conn_cmd(
        "readonly",
        1,
        FAST | STALE | LOADING,
        "Enables read-only queries for a connection to a replica.",
        readonly,
    ),
    conn_cmd(
        "readwrite",
        1,
        FAST | STALE | LOADING,
        "Enables read-write queries for a connection to a replica.",
        readwrite,
    ),
];

fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    // A subscribed RESP2 connection gets PING's answer as a message-like array.
    if ctx.conn.subscriber.is_some() && ctx.out.proto == Proto::Resp2 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        return ctx.out.bulk(args.get(1).map_or(&b""[..], |a| &a[..]));
    }
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(&args[1]),
        _ => ctx.out.error("ERR wrong number of arguments for 'ping' command"),
    }
}

fn echo(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    ctx.out.bulk(&args[1]);
}

fn quit(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.out.ok();
    ctx.conn.close = true;
}

fn reset(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    set_proto(ctx, Proto::Resp2);
    ctx.conn.authenticated = !ctx.node.requires_auth();
    ctx.conn.handle.acl.set(ctx.node.acl.default_user());
    ctx.conn.readonly = false;
    ctx.conn.subscriber = None;
    *ctx.conn.handle.name.lock() = None;
    ctx.conn.handle.no_evict.store(false, Ordering::Relaxed);
    ctx.conn.handle.no_touch.store(false, Ordering::Relaxed);
    ctx.out.simple("RESET");
}

fn set_proto(ctx: &mut Ctx<'_>, proto: Proto) {
    ctx.out.proto = proto;
    ctx.conn.handle.resp.store(if proto == Proto::Resp3 { 3 } else { 2 }, Ordering::Relaxed);
}

/// Checks a username/password pair against the ACL users and, when it matches, logs the
/// connection in as that user. A failure goes to ACL LOG (without the password).
fn check_password(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> CmdResult<()> {
    match ctx.node.acl.authenticate(user, pass) {
        Some(u) => {
            ctx.conn.handle.acl.set(u);
            ctx.conn.authenticated = true;
            Ok(())
        }
        None => {
            let name = String::from_utf8_lossy(&user[..user.len().min(128)]).into_owned();
            let context = if ctx.conn.multi.is_some() { "multi" } else { "toplevel" };
            let info = ctx.conn.handle.describe();
            ctx.node.acl.log.add(crate::acl::Reason::Auth, context, "AUTH".into(), name, info, ctx.node.now_ms());
            Err(CmdError::msg("WRONGPASS invalid username-password pair or user is disabled."))
        }
    }
}

fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let (user, pass) = match args.len() {
        2 => (&b"default"[..], &args[1][..]),
        3 => (&args[1][..], &args[2][..]),
        _ => return ctx.out.error("ERR syntax error"),
    };
    if args.len() == 2 && !ctx.node.requires_auth() {
        return ctx.out.error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    match check_password(ctx, user, pass) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(&e.0),
    }
}

fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let mut proto = ctx.out.proto;
    let mut i = 1;
    if args.len() > 1 {
        proto = match arg_i64(&args[1]) {
            Ok(2) => Proto::Resp2,
            Ok(3) => Proto::Resp3,
            Ok(_) => return ctx.out.error("NOPROTO unsupported protocol version"),
            Err(_) => return ctx.out.error("ERR Protocol version is not an integer or out of range"),
        };
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        if is(&args[i], "AUTH") && i + 2 < args.len() {
            if let Err(e) = check_password(ctx, &args[i + 1], &args[i + 2]) {
                return ctx.out.error(&e.0);
            }
            i += 3;
        } else if is(&args[i], "SETNAME") && i + 1 < args.len() {
            if let Err(e) = super::server::validate_client_name(&args[i + 1]) {
                return ctx.out.error(&e.0);
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return ctx.out.error(&format!("ERR Syntax error in HELLO option '{}'", super::text(&args[i])));
        }
    }
    if !ctx.conn.authenticated {
        return ctx.out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = name {
        *ctx.conn.handle.name.lock() = Some(n);
    }
    set_proto(ctx, proto);
    let (role, zone) = {
        let t = ctx.node.topology.load();
        (if t.myself().primary { "master" } else { "replica" }, t.myself().zone.clone())
    };
    let out = &mut *ctx.out;
    out.map(7 + zone.is_some() as usize);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(super::server::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if proto == Proto::Resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.conn.handle.id as i64);
    out.bulk(b"mode");
    out.bulk(b"cluster");
    out.bulk(b"role");
    out.bulk(role.as_bytes());
    out.bulk(b"modules");
    out.array(0);
    if let Some(zone) = zone {
        // Valkey 8's field: lets a proxy tier keep READONLY reads inside its own zone.
        out.bulk(b"availability_zone");
        out.bulk(zone.as_bytes());
    }
}

fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match arg_i64(&args[1]) {
        Ok(0) => ctx.out.ok(),
        Ok(_) => ctx.out.error("ERR SELECT is not allowed in cluster mode"),
        Err(e) => ctx.out.error(&e.0),
    }
}

fn readonly(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.conn.readonly = true;
    ctx.out.ok();
}

fn readwrite(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    ctx.conn.readonly = false;
    ctx.out.ok();
}
