//! Shared parts of Prism's fuzz targets (docs/fuzzing.md): the byte format of a `command`
//! session and the harness that runs one through the real dispatcher.
//!
//! A session is a byte string read left to right; every byte string is a valid session
//! (whatever is missing reads as zero), so libFuzzer never wastes an input on a framing
//! error, and the seed generator (`src/bin/seeds.rs`) writes sessions with [`encode`].
//!
//! ```text
//! session := flags step*
//! flags   := u8                       bit 0: switch to RESP3 (HELLO 3) first
//! step    := 0xFF 0xFF u16            the node's clock moves on by u16 * 16 ms
//!          | cmd:u16 argc:u8 arg*     command table entry cmd % N, argc % 12 arguments
//! arg     := 0 i:u8 | 1 i:u8          a key / a member from small pools (hash-tagged
//!                                     keys, so multi-key commands reach their logic)
//!          | 2 i:u8                   an integer: small, or an edge value
//!          | 3 i:u8 | 4 i:u8          a float / a keyword (NX, WITHSCORES, LIMIT, ...)
//!          | 5 len:u8 bytes           raw bytes, at most 32
//!          | 6 i:u8                   a subcommand name of this command
//!          | 7                        the last bulk string replied (DUMP -> RESTORE)
//! ```
//!
//! Invariants the harness asserts (a failure is a crash, a real bug): no panic; every
//! reply is whole, well-formed RESP (RESP2 or RESP3, as the connection speaks) with
//! nothing left over.

pub mod seeds;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// Keys: mostly one hash tag, so multi-key commands stay in one slot (no CROSSSLOT).
pub const KEYS: &[&str] = &["{t}a", "{t}b", "{t}c", "{t}d", "{t}e", "k", "v1", "v2"];
pub const MEMBERS: &[&str] = &["m1", "m2", "m3", "f", "1", "2", "x", "", "v1", "v2", "{t}a", "follows"];
pub const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    -2,
    5,
    10,
    100,
    1000,
    16383,
    16384,
    i64::MAX,
    i64::MIN,
    i32::MAX as i64,
    i32::MIN as i64,
    u32::MAX as i64,
    1 << 40,
    -(1 << 40),
    1_000_000_000,
    -1_000_000_000,
    1_700_000_000,
    1_700_000_000_000,
    9_007_199_254_740_993,
];
pub const FLOATS: &[&str] = &[
    "0",
    "1.5",
    "-1.5",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "1e308",
    "-1e308",
    "5e-324",
    "-0",
    "0.1",
    "3",
    "1e",
    "(1",
    "(-inf",
    "[a",
    "(a",
    "-",
    "+",
    "17179869184",
];
/// Option words the command handlers look for (collected from their `is(arg, ..)` calls).
pub const WORDS: &[&str] = &[
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "KEEPTTL",
    "GET",
    "PERSIST",
    "WITHSCORES",
    "WITHSCORE",
    "LIMIT",
    "BYSCORE",
    "BYLEX",
    "REV",
    "COUNT",
    "MATCH",
    "TYPE",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "MIN",
    "MAX",
    "ALPHA",
    "ASC",
    "DESC",
    "BY",
    "STORE",
    "REPLACE",
    "ABSTTL",
    "IDLETIME",
    "FREQ",
    "RANK",
    "MAXLEN",
    "WITHVALUES",
    "NOVALUES",
    "ALL",
    "ASYNC",
    "SYNC",
    "DB",
    "COPY",
    "KEYS",
    "LABEL",
    "PROPS",
    "WITHPROPS",
    "OUT",
    "IN",
    "BOTH",
    "MAXDEPTH",
    "MAXVERTICES",
    "MINRANK",
    "MAXRANK",
    "FILTERBY",
    "ID",
    "USER",
    "ADDR",
    "LADDR",
    "SKIPME",
    "ON",
    "OFF",
    "YES",
    "NO",
    "RESET",
    "DEFAULT",
    "EVERYTHING",
    "AUTH",
    "SETNAME",
    "NODE",
    "MIGRATING",
    "IMPORTING",
    "STABLE",
    "EPOCH",
    "TIMEOUT",
    "CURSOR",
    "SAMPLES",
    "PREFIX",
    "BCAST",
    "OPTIN",
    "OPTOUT",
    "NOLOOP",
    "REDIRECT",
    "NORMAL",
    "MASTER",
    "REPLICA",
    "PUBSUB",
    "PATTERN",
    "ABORT",
    "FORCE",
    "TAKEOVER",
    "*",
    "#",
    "*->f",
    "maxmemory",
    "timeout",
    "proto-max-bulk-len",
    "slowlog-log-slower-than",
    "maxmemory-policy",
    "allkeys-lru",
    "+@all",
    "~*",
    "on",
    ">pw",
    "nopass",
    "alice",
    "3",
    "2",
];
/// Most arguments after the command name.
pub const MAX_ARGS: u8 = 12;
/// Most bytes of a raw argument.
pub const MAX_RAW: usize = 32;

/// One argument, as [`encode`] writes it.
#[derive(Debug, Clone)]
pub enum Arg {
    Key(u8),
    Member(u8),
    Int(u8),
    Float(u8),
    Word(u8),
    Raw(Vec<u8>),
    Sub(u8),
    LastBulk,
}

/// One step of a session.
#[derive(Debug, Clone)]
pub enum Step {
    Request { command: u16, args: Vec<Arg> },
    Tick(u16),
}

/// Every command name, then every `container|sub` pair, as the table lists them; the
/// session format indexes this list.
pub fn commands() -> &'static [(&'static str, Vec<&'static str>)] {
    static LIST: OnceLock<Vec<(&'static str, Vec<&'static str>)>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut list: Vec<_> =
            prism_server::table::all().map(|c| (c.name, c.subcommands().iter().map(|s| s.name).collect())).collect();
        // The table's own order may change as families are added; sorting keeps the seeds'
        // indexes meaningful longer.
        list.sort_by_key(|(name, _)| *name);
        list
    })
}

/// The index of command `name` in [`commands`] (for the seed generator).
pub fn command_index(name: &str) -> u16 {
    commands().iter().position(|(n, _)| n.eq_ignore_ascii_case(name)).expect("a command in the table") as u16
}

/// The index of `word` in a pool (for the seed generator).
pub fn index_of(pool: &[&str], word: &str) -> u8 {
    pool.iter().position(|w| w.eq_ignore_ascii_case(word)).expect("a word of the pool") as u8
}

/// Writes a session (see the module doc).
pub fn encode(resp3: bool, steps: &[Step]) -> Vec<u8> {
    let mut out = vec![resp3 as u8];
    for step in steps {
        match step {
            Step::Tick(n) => {
                out.extend_from_slice(&[0xFF, 0xFF]);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Step::Request { command, args } => {
                out.extend_from_slice(&command.to_be_bytes());
                out.push(args.len() as u8);
                for a in args {
                    match a {
                        Arg::Key(i) => out.extend_from_slice(&[0, *i]),
                        Arg::Member(i) => out.extend_from_slice(&[1, *i]),
                        Arg::Int(i) => out.extend_from_slice(&[2, *i]),
                        Arg::Float(i) => out.extend_from_slice(&[3, *i]),
                        Arg::Word(i) => out.extend_from_slice(&[4, *i]),
                        Arg::Raw(b) => {
                            out.extend_from_slice(&[5, b.len() as u8]);
                            out.extend_from_slice(b);
                        }
                        Arg::Sub(i) => out.extend_from_slice(&[6, *i]),
                        Arg::LastBulk => out.push(7),
                    }
                }
            }
        }
    }
    out
}

/// A cursor that reads zeros past the end.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn int_arg(i: u8) -> Vec<u8> {
    // Half the values are small (-64..64), the rest the edge table.
    let v = if i < 128 { i as i64 - 64 } else { INTS[i as usize % INTS.len()] };
    v.to_string().into_bytes()
}

fn pick(pool: &[&str], i: u8) -> Vec<u8> {
    pool[i as usize % pool.len()].as_bytes().to_vec()
}

/// Reads the next step's arguments (command name first); `None` at the end of input.
fn next_request(c: &mut Cursor<'_>, last_bulk: &Bytes, clock: &prism_engine::clock::ManualClock) -> Option<Vec<Bytes>> {
    loop {
        if c.0.is_empty() {
            return None;
        }
        let cmd = c.u16();
        if cmd == 0xFFFF {
            clock.advance_ms(u64::from(c.u16()) * 16);
            continue;
        }
        let list = commands();
        let (name, subs) = &list[cmd as usize % list.len()];
        let argc = c.u8() % (MAX_ARGS + 1);
        let mut args = vec![Bytes::from_static(name.as_bytes())];
        for _ in 0..argc {
            let arg = match c.u8() % 8 {
                0 => pick(KEYS, c.u8()),
                1 => pick(MEMBERS, c.u8()),
                2 => int_arg(c.u8()),
                3 => pick(FLOATS, c.u8()),
                4 => pick(WORDS, c.u8()),
                5 => {
                    let n = c.u8() as usize % (MAX_RAW + 1);
                    c.bytes(n).to_vec()
                }
                6 => match subs.len() {
                    0 => pick(WORDS, c.u8()),
                    n => subs[c.u8() as usize % n].as_bytes().to_vec(),
                },
                _ => last_bulk.to_vec(),
            };
            args.push(Bytes::from(arg));
        }
        return Some(args);
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    // Paused time advances by itself whenever the runtime would idle, so a deferred reply
    // that sleeps (a traversal's deadline, WAIT) completes at once instead of stalling.
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("a runtime")
    })
}

/// Splits a connection's output into whole RESP frames; panics on a malformed or cut-off
/// reply. Returns the last top-level bulk string, if the output ended with one.
fn check_replies(buf: &[u8], resp3: bool) -> Option<Bytes> {
    use redis_protocol::{resp2, resp3 as r3};
    let mut rest = buf;
    let mut last = None;
    while !rest.is_empty() {
        let used = if resp3 {
            match r3::decode::complete::decode(rest) {
                Ok(Some((frame, used))) => {
                    last = match frame {
                        r3::types::OwnedFrame::BlobString { data, .. } => Some(Bytes::from(data)),
                        _ => None,
                    };
                    used
                }
                other => panic!("malformed RESP3 reply {other:?} in {:?}", String::from_utf8_lossy(buf)),
            }
        } else {
            match resp2::decode::decode(rest) {
                Ok(Some((frame, used))) => {
                    last = match frame {
                        resp2::types::OwnedFrame::BulkString(data) => Some(Bytes::from(data)),
                        _ => None,
                    };
                    used
                }
                other => panic!("malformed RESP2 reply {other:?} in {:?}", String::from_utf8_lossy(buf)),
            }
        };
        rest = &rest[used..];
    }
    last
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs one session against a fresh standalone node (see the module doc).
pub fn run_session(data: &[u8]) {
    use prism_server::conn::{run_request, ConnState};
    use prism_server::resp::{Proto, ReplyWriter};

    let rt = runtime();
    let _enter = rt.enter();
    let clock = prism_engine::clock::ManualClock::new(1_700_000_000_000);
    let topology = prism_server::topology::Topology::single("0".repeat(40), "127.0.0.1".into(), 6379);
    let node = prism_server::node::Node::new(prism_server::Config::default(), Arc::new(clock.clone()), None, topology);
    let addr = "127.0.0.1:40000".parse().expect("an address");
    let laddr = "127.0.0.1:6379".parse().expect("an address");
    let Some(registration) = node.clients.register(addr, laddr, 7, usize::MAX) else {
        return;
    };
    let mut state = ConnState::new(registration.handle.clone(), true);
    let mut out = ReplyWriter::new(Proto::Resp2);
    let mut c = Cursor(data);
    let mut last_bulk = Bytes::new();
    if c.u8() & 1 == 1 {
        let hello = [Bytes::from_static(b"HELLO"), Bytes::from_static(b"3")];
        let _ = rt.block_on(tokio::time::timeout(HOUR, run_request(&node, &mut state, &hello, &mut out)));
        out.buf.clear();
    }
    while let Some(args) = next_request(&mut c, &last_bulk, &clock) {
        state.waited();
        // A reply that waits for ever (WAIT with no timeout) gives up after an hour of
        // paused time, which passes at once: nothing else can wake it here.
        let _ = rt.block_on(tokio::time::timeout(HOUR, run_request(&node, &mut state, &args, &mut out)));
        // A blocked command (BLPOP ...) with nothing to serve: the connection would wait
        // for a write; here it times out at once, as with a short timeout.
        state.blocked = None;
        if let Some(bulk) = check_replies(&out.buf, out.proto != Proto::Resp2) {
            last_bulk = bulk;
        }
        out.buf.clear();
        if state.close || state.handle.is_killed() {
            break;
        }
    }
}
