//! Range selection against a naive model: every member in a sorted Vec.

use rand::{Rng, SeedableRng};

use super::*;

fn build(pairs: &[(f64, &str)]) -> ZSetValue {
    let mut z = ZSetValue::default();
    for (s, m) in pairs {
        z.insert(m.as_bytes(), *s);
    }
    z
}

fn names(it: impl Iterator<Item = (&'static [u8], f64)>) -> Vec<String> {
    it.map(|(m, _)| String::from_utf8_lossy(m).into_owned()).collect()
}

fn sb(value: f64, exclusive: bool) -> ScoreBound {
    ScoreBound { value, exclusive }
}

#[test]
fn rank_score_and_lex_ranges() {
    let z = build(&[(1.0, "a"), (2.0, "b"), (2.0, "c"), (3.0, "d"), (f64::INFINITY, "e")]);
    let z: &'static ZSetValue = Box::leak(Box::new(z));
    let r = |by, rev| Range::new(by, rev);
    assert_eq!(names(z.range(&r(RangeBy::Rank { start: 0, stop: -1 }, false))), ["a", "b", "c", "d", "e"]);
    assert_eq!(names(z.range(&r(RangeBy::Rank { start: 0, stop: 1 }, true))), ["e", "d"]);
    assert_eq!(names(z.range(&r(RangeBy::Rank { start: -2, stop: 100 }, false))), ["d", "e"]);
    assert_eq!(names(z.range(&r(RangeBy::Rank { start: 3, stop: 1 }, false))), Vec::<String>::new());
    let by = RangeBy::Score { min: sb(2.0, false), max: sb(f64::INFINITY, false) };
    assert_eq!(names(z.range(&r(by.clone(), false))), ["b", "c", "d", "e"]);
    assert_eq!(names(z.range(&r(by.clone(), true))), ["e", "d", "c", "b"]);
    assert_eq!(names(z.range(&Range { by: by.clone(), rev: false, offset: 1, limit: 2 })), ["c", "d"]);
    assert_eq!(names(z.range(&Range { by: by.clone(), rev: true, offset: 1, limit: -1 })), ["d", "c", "b"]);
    assert_eq!(names(z.range(&Range { by: by.clone(), rev: false, offset: -1, limit: 2 })), Vec::<String>::new());
    assert_eq!(z.count(&RangeBy::Score { min: sb(2.0, true), max: sb(3.0, false) }), 1);
    assert_eq!(z.count(&RangeBy::Score { min: sb(3.0, true), max: sb(2.0, false) }), 0);
    let lex = RangeBy::Lex { min: LexBound::Excl(Bytes::from("b")), max: LexBound::Incl(Bytes::from("d")) };
    assert_eq!(names(z.range(&r(lex, false))), ["c", "d"]);
    assert_eq!(z.count(&RangeBy::Lex { min: LexBound::Min, max: LexBound::Max }), 5);
    assert_eq!(z.count(&RangeBy::Lex { min: LexBound::Max, max: LexBound::Min }), 0);
    assert_eq!(z.rank(b"c", false), Some(2));
    assert_eq!(z.rank(b"c", true), Some(2));
    assert_eq!(z.rank(b"a", true), Some(4));
}

#[test]
fn randomized_ranges_against_sorted_vec() {
    let seed: u64 = std::env::var("PRISM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..200 {
        let mut z = ZSetValue::default();
        for _ in 0..rng.random_range(0..60) {
            let m = format!("{}", (b'a' + rng.random_range(0..20u8)) as char);
            z.insert(m.as_bytes(), rng.random_range(-4..4) as f64 / 2.0);
        }
        let mut model: Vec<(f64, Vec<u8>)> = z.iter().map(|(m, s)| (s, m.to_vec())).collect();
        model.sort_by(|a, b| tree::cmp_key(a.0, &a.1, b.0, &b.1));
        for _ in 0..20 {
            let (lo, hi) = (rng.random_range(-5..5) as f64 / 2.0, rng.random_range(-5..5) as f64 / 2.0);
            let (lx, hx) = (rng.random_bool(0.5), rng.random_bool(0.5));
            let rev = rng.random_bool(0.5);
            let (offset, limit) = (rng.random_range(-1..5), rng.random_range(-1..5));
            let by = RangeBy::Score { min: sb(lo, lx), max: sb(hi, hx) };
            let got: Vec<Vec<u8>> =
                z.range(&Range { by: by.clone(), rev, offset, limit }).map(|(m, _)| m.to_vec()).collect();
            let inside = |s: f64| (if lx { s > lo } else { s >= lo }) && (if hx { s < hi } else { s <= hi });
            let mut want: Vec<Vec<u8>> = model.iter().filter(|(s, _)| inside(*s)).map(|(_, m)| m.clone()).collect();
            assert_eq!(z.count(&by), want.len());
            if rev {
                want.reverse();
            }
            let want: Vec<Vec<u8>> = if offset < 0 {
                Vec::new()
            } else {
                want.into_iter()
                    .skip(offset as usize)
                    .take(if limit < 0 { usize::MAX } else { limit as usize })
                    .collect()
            };
            assert_eq!(got, want, "seed {seed} {by:?} rev {rev} offset {offset} limit {limit}");
            let (start, stop) = (rng.random_range(-70..70), rng.random_range(-70..70));
            let got: Vec<Vec<u8>> =
                z.range(&Range::new(RangeBy::Rank { start, stop }, rev)).map(|(m, _)| m.to_vec()).collect();
            let mut ordered = model.clone();
            if rev {
                ordered.reverse();
            }
            let want: Vec<Vec<u8>> = match rank_span(start, stop, ordered.len()) {
                Some((s, e)) => ordered[s..=e].iter().map(|(_, m)| m.clone()).collect(),
                None => Vec::new(),
            };
            assert_eq!(got, want, "seed {seed} rank {start} {stop} rev {rev}");
        }
    }
}

#[test]
fn score_parsing_follows_string2d_and_strtod() {
    assert_eq!(parse_score(b"1.5"), Some(1.5));
    assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
    assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
    assert_eq!(parse_score(b"1e3"), Some(1000.0));
    for bad in [&b"nan"[..], b"", b" 1", b"1 ", b"1e400", b"1e-400", b"abc", b"(1"] {
        assert_eq!(parse_score(bad), None, "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(parse_score(b"-0").map(|v| v.is_sign_negative()), Some(true));
    assert_eq!(parse_score_bound(b"(1.5"), Some(ScoreBound { value: 1.5, exclusive: true }));
    assert_eq!(parse_score_bound(b""), Some(ScoreBound { value: 0.0, exclusive: false }));
    assert_eq!(parse_score_bound(b"("), Some(ScoreBound { value: 0.0, exclusive: true }));
    assert_eq!(parse_score_bound(b"1e400"), Some(ScoreBound { value: f64::INFINITY, exclusive: false }));
    assert_eq!(parse_score_bound(b"nan"), None);
    assert_eq!(parse_score_bound(b"[1"), None);
    assert_eq!(parse_lex_bound(&Bytes::from("+")), Some(LexBound::Max));
    assert_eq!(parse_lex_bound(&Bytes::from("-")), Some(LexBound::Min));
    assert_eq!(parse_lex_bound(&Bytes::from("[")), Some(LexBound::Incl(Bytes::new())));
    assert_eq!(parse_lex_bound(&Bytes::from("+a")), None);
    assert_eq!(parse_lex_bound(&Bytes::from("a")), None);
    assert_eq!(parse_lex_bound(&Bytes::new()), None);
}

#[test]
fn combine_weights_and_aggregates() {
    let a = build(&[(1.0, "x"), (2.0, "y")]);
    let b = build(&[(10.0, "y"), (20.0, "z")]);
    let srcs = [Source::ZSet(&a), Source::ZSet(&b), Source::Missing];
    let run = |kind, weights: &[f64], how, n| {
        let z = combine(kind, weights, how, n, |i, f| f(srcs[i]));
        z.iter().map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s)).collect::<Vec<_>>()
    };
    let s = |m: &str, v: f64| (m.to_string(), v);
    assert_eq!(run(Combine::Union, &[], Aggregate::Sum, 2), [s("x", 1.0), s("y", 12.0), s("z", 20.0)]);
    assert_eq!(run(Combine::Union, &[2.0, 1.0], Aggregate::Max, 2), [s("x", 2.0), s("y", 10.0), s("z", 20.0)]);
    assert_eq!(run(Combine::Inter, &[], Aggregate::Min, 2), [s("y", 2.0)]);
    assert_eq!(run(Combine::Inter, &[], Aggregate::Sum, 3), []);
    assert_eq!(run(Combine::Diff, &[], Aggregate::Sum, 3), [s("x", 1.0)]);
    let inf = build(&[(f64::INFINITY, "x")]);
    let ninf = build(&[(f64::NEG_INFINITY, "x")]);
    let z = combine(Combine::Union, &[], Aggregate::Sum, 2, |i, f| f([Source::ZSet(&inf), Source::ZSet(&ninf)][i]));
    assert_eq!(z.score(b"x"), Some(0.0));
}

/// Found by `fuzz/fuzz_targets/op_decode.rs`: a ZADD op carrying a NaN score (which no
/// handler makes, but a damaged log or a peer could) reached the tree's NaN assertion.
/// It is refused like ZADD's NaN argument, and changes nothing.
#[test]
fn an_op_with_a_nan_score_is_refused_and_changes_nothing() {
    use crate::op::{Op, OpError, Output, Write};
    let ks = crate::Keyspace::new();
    let add = |pairs: Vec<(f64, bytes::Bytes)>| {
        let op = Op::SortedSets(ZSetOp::Add { key: "z".into(), flags: AddFlags::default(), pairs });
        ks.apply(&Write { now_ms: 1, op })
    };
    assert_eq!(add(vec![(1.0, "a".into()), (f64::NAN, "b".into())]), Output::Err(OpError::NotFloat));
    assert!(ks.get(b"z", 1, |e| e.is_none()), "a refused ZADD created the key");
    assert_eq!(add(vec![(1.0, "a".into())]), Output::Int(1));
    assert_eq!(add(vec![(f64::NAN, "a".into())]), Output::Err(OpError::NotFloat));
    assert_eq!(ks.get(b"z", 1, |e| e.map(|e| e.value.kind().name())), Some("zset"));
}
