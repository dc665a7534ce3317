//! `ACL`: users and permissions as Redis 7 spells them (the model is in `crate::acl`).
//!
//! SETUSER, DELUSER and LOAD change users for their connected clients before replying;
//! SAVE writes the `aclfile` (digests only, never clear-text passwords); LOG shows the
//! bounded ACL LOG; DRYRUN checks a command for a user without running it.

use bytes::Bytes;

use super::{arg_i64, is, text, CmdError, Ctx};
use crate::acl::{self, commands, Reason};
use crate::table::{self, category, flag::*, CommandSpec, Group, Handler, KeySpec};

const fn sub(
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
        group: Group::Server,
        summary,
        since: "6.0.0",
        complexity: "O(N). Where N is the number of users or rules.",
        handler: Handler::Direct(f),
    }
}

const ADMIN_SUB: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const PLAIN_SUB: u32 = NOSCRIPT | LOADING | STALE;

const SUBCOMMANDS: &[CommandSpec] = &[
    sub("cat", -2, PLAIN_SUB, "Lists the ACL categories, or the commands inside a category.", cat),
    sub("deluser", -3, ADMIN_SUB, "Deletes ACL users, and terminates their connections.", deluser),
    sub(
        "dryrun",
        -4,
        ADMIN_SUB,
        "Simulates the execution of a command by a user, without executing the command.",
        dryrun,
    ),
    sub(
        "genpass",
        -2,
        PLAIN_SUB,
        "Generates a pseudorandom, secure password that can be used to identify ACL users.",
        genpass,
    ),
    sub("getuser", 3, ADMIN_SUB, "Lists the ACL rules of a user.", getuser),
    sub("help", 2, PLAIN_SUB, "Returns helpful text about the different subcommands.", help),
    sub("list", 2, ADMIN_SUB, "Dumps the effective rules in ACL file format.", list),
    sub("load", 2, ADMIN_SUB, "Reloads the rules from the configured ACL file.", load),
    sub("log", -2, ADMIN_SUB, "Lists recent security events generated due to commands rejected by ACL rules.", log),
    sub("save", 2, ADMIN_SUB, "Saves the effective ACL rules in the configured ACL file.", save),
    sub("setuser", -3, ADMIN_SUB, "Creates and modifies an ACL user and its rules.", setuser),
    sub("users", 2, ADMIN_SUB, "Lists all ACL users.", users),
    sub("whoami", 2, PLAIN_SUB, "Returns the authenticated username of the current connection.", whoami),
];

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "acl",
    arity: -2,
    flags: 0,
    keys: KeySpec::None,
    group: Group::Server,
    summary: "A container for Access List Control commands.",
    since: "6.0.0",
    complexity: "Depends on subcommand.",
    handler: Handler::Container(SUBCOMMANDS),
}];

fn cat(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    match args.get(2) {
        None => {
            ctx.out.array(category::NAMES.len());
            for (_, name) in category::NAMES {
                ctx.out.bulk(name.as_bytes());
            }
        }
        Some(name) => match category::bit(&text(name)) {
            Some(bit) => {
                let names = commands::index().names_in_category(bit);
                ctx.out.array(names.len());
                for n in names {
                    ctx.out.bulk(n.as_bytes());
                }
            }
            None => ctx.fail(CmdError::msg(format!("ERR Unknown category '{}'", text(name)))),
        },
    }
}

fn setuser(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let name = text(&args[2]);
    let rules: Vec<String> = args[3..].iter().map(|a| text(a)).collect();
    if let Some(r) = rules.iter().find(|r| r.starts_with('(')) {
        let msg = format!("ERR Error in ACL SETUSER modifier '{}': selectors are not supported", acl::redact_rule(r));
        return ctx.fail(CmdError::msg(msg));
    }
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    match ctx.node.acl.set_user(ctx.node, &name, &rules) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.fail(e),
    }
}

fn deluser(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let names: Vec<String> = args[2..].iter().map(|a| text(a)).collect();
    match ctx.node.acl.del_users(ctx.node, &names) {
        Ok(n) => ctx.out.int(n as i64),
        Err(e) => ctx.fail(e),
    }
}

fn getuser(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let Some(u) = ctx.node.acl.user(&text(&args[2])) else { return ctx.out.null() };
    let out = &mut *ctx.out;
    out.map(6);
    out.bulk(b"flags");
    let flags = u.flags();
    out.array(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    out.array(u.passwords.len());
    for p in &u.passwords {
        out.bulk(acl::user::hex(p).as_bytes());
    }
    out.bulk(b"commands");
    out.bulk(u.commands_text().as_bytes());
    out.bulk(b"keys");
    out.bulk(u.keys_text().as_bytes());
    out.bulk(b"channels");
    out.bulk(u.channels_text().as_bytes());
    out.bulk(b"selectors");
    out.array(0);
}

fn list(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let users = ctx.node.acl.users();
    ctx.out.array(users.len());
    for u in users {
        ctx.out.bulk(u.describe().as_bytes());
    }
}

fn users(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let names = ctx.node.acl.names();
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
}

fn whoami(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let name = ctx.conn.handle.acl.user().name.clone();
    ctx.out.bulk(name.as_bytes());
}

fn genpass(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    const MSG: &str =
        "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096";
    let bits = match args.get(2).map(|a| arg_i64(a)) {
        None => 256,
        Some(Ok(n)) if (1..=4096).contains(&n) => n as usize,
        Some(_) => return ctx.fail(CmdError::msg(MSG)),
    };
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; bits.div_ceil(8)];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return ctx.fail(CmdError::msg("ERR no system randomness"));
    }
    // One hex digit per 4 bits, rounded up, as Redis.
    let hex = acl::user::hex(&bytes);
    ctx.out.bulk(&hex.as_bytes()[..bits.div_ceil(4).min(hex.len())]);
}

fn log(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let count = match args.get(2) {
        None => 10,
        Some(a) if is(a, "RESET") => {
            ctx.node.acl.log.reset();
            return ctx.out.ok();
        }
        Some(a) => match arg_i64(a) {
            Ok(n) if n >= 0 => n as usize,
            _ => return ctx.fail(CmdError::NOT_INTEGER),
        },
    };
    let entries = ctx.node.acl.log.recent(count);
    let now = ctx.node.now_ms();
    let out = &mut *ctx.out;
    out.array(entries.len());
    for e in entries {
        out.map(10);
        out.bulk(b"count");
        out.int(e.count as i64);
        out.bulk(b"reason");
        out.bulk(e.reason.name().as_bytes());
        out.bulk(b"context");
        out.bulk(e.context.as_bytes());
        out.bulk(b"object");
        out.bulk(e.object.as_bytes());
        out.bulk(b"username");
        out.bulk(e.username.as_bytes());
        out.bulk(b"age-seconds");
        out.double(now.saturating_sub(e.created_ms) as f64 / 1000.0);
        out.bulk(b"client-info");
        out.bulk(e.client_info.as_bytes());
        out.bulk(b"entry-id");
        out.int(e.entry_id as i64);
        out.bulk(b"timestamp-created");
        out.int(e.created_ms as i64);
        out.bulk(b"timestamp-last-updated");
        out.int(e.updated_ms as i64);
    }
}

fn load(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let Some(path) = ctx.node.config.read().aclfile.clone() else { return ctx.fail(no_aclfile()) };
    match ctx.node.acl.load_file(Some(ctx.node), &path) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.fail(CmdError::msg(format!("ERR {e}"))),
    }
}

fn save(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    let Some(path) = ctx.node.config.read().aclfile.clone() else { return ctx.fail(no_aclfile()) };
    match ctx.node.acl.save_file(&path) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.fail(CmdError::msg(format!("ERR There was an error trying to save the ACLs: {e}"))),
    }
}

fn no_aclfile() -> CmdError {
    CmdError::msg("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.")
}

/// `ACL DRYRUN <user> <command> [arg ...]`: `+OK`, or why the user may not.
fn dryrun(ctx: &mut Ctx<'_>, args: &[Bytes]) {
    let Some(user) = ctx.node.acl.user(&text(&args[2])) else {
        return ctx.fail(CmdError::msg(format!("ERR User '{}' not found", text(&args[2]))));
    };
    let cmd_args = &args[3..];
    let Some(mut spec) = table::lookup(&cmd_args[0]) else {
        return ctx.fail(CmdError::msg(format!("ERR Command '{}' not found", text(&cmd_args[0]))));
    };
    if let (Handler::Container(_), Some(sub)) = (&spec.handler, cmd_args.get(1)) {
        match table::lookup_sub(spec, sub) {
            Some(s) => spec = s,
            None => return ctx.fail(CmdError::msg(format!("ERR Command '{}' not found", text(&cmd_args[0])))),
        }
    }
    if !spec.arity_ok(cmd_args.len()) {
        let msg = format!("ERR wrong number of arguments for '{}' command", spec.name);
        return ctx.fail(CmdError::msg(msg));
    }
    match acl::evaluate(&user, spec, cmd_args) {
        None => ctx.out.ok(),
        Some((Reason::Command, object)) => {
            let msg = format!("User {} has no permissions to run the '{object}' command", user.name);
            ctx.out.bulk(msg.as_bytes())
        }
        Some((Reason::Key, object)) => {
            ctx.out.bulk(format!("User {} has no permissions to access the '{object}' key", user.name).as_bytes())
        }
        Some((_, object)) => {
            ctx.out.bulk(format!("User {} has no permissions to access the '{object}' channel", user.name).as_bytes())
        }
    }
}

fn help(ctx: &mut Ctx<'_>, _: &[Bytes]) {
    super::container_help(ctx, "acl");
}
