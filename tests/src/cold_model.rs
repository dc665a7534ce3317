//! A model workload for cold-tier tests: about 24 MB of strings, hashes, sets, sorted
//! sets and lists written through a real connection, read back and compared, and the
//! INFO helpers that wait for a node to spill (tests/tests/tier.rs, backup.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis_protocol::resp2::types::OwnedFrame;

use crate::fleet::RespConn;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What was written: key -> the commands that read it back and the expected reply text.
#[derive(Default)]
pub struct Model {
    pub strings: BTreeMap<String, String>,
    pub hashes: BTreeMap<String, Vec<(String, String)>>,
    pub sets: BTreeMap<String, Vec<String>>,
    pub zsets: BTreeMap<String, Vec<(String, i64)>>,
    pub lists: BTreeMap<String, Vec<String>>,
}

impl Model {
    pub fn keys(&self) -> usize {
        self.strings.len() + self.hashes.len() + self.sets.len() + self.zsets.len() + self.lists.len()
    }
}

pub fn text(f: &OwnedFrame) -> String {
    match f {
        OwnedFrame::SimpleString(s) | OwnedFrame::BulkString(s) => String::from_utf8_lossy(s).into_owned(),
        OwnedFrame::Error(e) => format!("-{e}"),
        OwnedFrame::Integer(i) => i.to_string(),
        OwnedFrame::Null => "(nil)".into(),
        OwnedFrame::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
    }
}

/// Runs a command, retrying (bounded) while the node answers OOM or TRYAGAIN: writes
/// can outrun the spiller for a moment, as in Redis with an eviction policy.
pub fn call(c: &mut RespConn, args: &[&str]) -> OwnedFrame {
    let deadline = Instant::now() + TIMEOUT;
    for _ in 0..5_000 {
        let r = c.call(args).expect("reply");
        match &r {
            OwnedFrame::Error(e)
                if (e.starts_with("OOM") || e.starts_with("TRYAGAIN")) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return r,
        }
    }
    panic!("{args:?} kept failing");
}

pub fn value(i: usize, len: usize) -> String {
    let unit = format!("v{i:06}-");
    unit.repeat(len / unit.len() + 1)[..len].to_string()
}

pub fn write_all(c: &mut RespConn) -> Model {
    let mut m = Model::default();
    for i in 0..1_600 {
        let (k, v) = (format!("str:{i}"), value(i, 8_000));
        assert_eq!(text(&call(c, &["SET", &k, &v])), "OK");
        m.strings.insert(k, v);
    }
    for i in 0..150 {
        let k = format!("hash:{i}");
        let fields: Vec<(String, String)> = (0..20).map(|f| (format!("f{f:02}"), value(i * 100 + f, 1_000))).collect();
        let mut args = vec!["HSET".to_string(), k.clone()];
        fields.iter().for_each(|(f, v)| args.extend([f.clone(), v.clone()]));
        call(c, &args.iter().map(String::as_str).collect::<Vec<_>>());
        m.hashes.insert(k, fields);
    }
    for i in 0..150 {
        let (sk, zk, lk) = (format!("set:{i}"), format!("zset:{i}"), format!("list:{i}"));
        let members: Vec<String> = (0..40).map(|j| value(i * 1000 + j, 300)).collect();
        let mut sargs = vec!["SADD".to_string(), sk.clone()];
        sargs.extend(members.iter().cloned());
        call(c, &sargs.iter().map(String::as_str).collect::<Vec<_>>());
        let mut sorted = members.clone();
        sorted.sort();
        m.sets.insert(sk, sorted);
        let mut zargs = vec!["ZADD".to_string(), zk.clone()];
        let scored: Vec<(String, i64)> = members.iter().enumerate().map(|(j, x)| (x.clone(), j as i64)).collect();
        scored.iter().for_each(|(x, s)| zargs.extend([s.to_string(), x.clone()]));
        call(c, &zargs.iter().map(String::as_str).collect::<Vec<_>>());
        m.zsets.insert(zk, scored);
        let mut largs = vec!["RPUSH".to_string(), lk.clone()];
        largs.extend(members.iter().cloned());
        call(c, &largs.iter().map(String::as_str).collect::<Vec<_>>());
        m.lists.insert(lk, members);
    }
    m
}

/// Reads every key back and compares it with the model.
pub fn check_all(c: &mut RespConn, m: &Model) {
    for (k, v) in &m.strings {
        assert_eq!(&text(&call(c, &["GET", k])), v, "GET {k}");
    }
    for (k, fields) in &m.hashes {
        let want: Vec<String> = fields.iter().flat_map(|(f, v)| [f.clone(), v.clone()]).collect();
        let mut got: Vec<(String, String)> = Vec::new();
        if let OwnedFrame::Array(items) = call(c, &["HGETALL", k]) {
            for p in items.chunks(2) {
                got.push((text(&p[0]), text(&p[1])));
            }
        }
        got.sort();
        let got: Vec<String> = got.into_iter().flat_map(|(f, v)| [f, v]).collect();
        assert_eq!(got, want, "HGETALL {k}");
    }
    for (k, members) in &m.sets {
        let mut got: Vec<String> = match call(c, &["SMEMBERS", k]) {
            OwnedFrame::Array(items) => items.iter().map(text).collect(),
            other => panic!("SMEMBERS {k}: {other:?}"),
        };
        got.sort();
        assert_eq!(&got, members, "SMEMBERS {k}");
    }
    for (k, scored) in &m.zsets {
        let want: Vec<String> = scored.iter().flat_map(|(x, s)| [x.clone(), s.to_string()]).collect();
        assert_eq!(text(&call(c, &["ZRANGE", k, "0", "-1", "WITHSCORES"])), want.join(","), "ZRANGE {k}");
    }
    for (k, items) in &m.lists {
        assert_eq!(text(&call(c, &["LRANGE", k, "0", "-1"])), items.join(","), "LRANGE {k}");
    }
}

pub fn info_field(c: &mut RespConn, section: &str, field: &str) -> u64 {
    let info = text(&call(c, &["INFO", section]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}: {info}"))
}

/// Waits (bounded) until INFO tiering shows cold partitions and memory is back under
/// the high watermark.
pub fn wait_spilled(c: &mut RespConn, maxmemory: u64) {
    let deadline = Instant::now() + TIMEOUT;
    for _ in 0..3_000 {
        let cold = info_field(c, "tiering", "cold_partitions");
        let used = info_field(c, "memory", "used_memory");
        if cold > 0 && used <= maxmemory {
            return;
        }
        assert!(Instant::now() < deadline, "no spill: cold {cold}, used {used}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
