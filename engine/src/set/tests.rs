//! Unit tests of set apply: through `Keyspace::apply`, as the write path runs it.

use bytes::Bytes;
use rand::{Rng, SeedableRng};

use super::*;
use crate::keyspace::Keyspace;
use crate::op::{Op, Write};

const NOW: u64 = 1_000;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn run(ks: &Keyspace, op: SetOp) -> Output {
    ks.apply(&Write { now_ms: NOW, op: Op::Sets(op) })
}

fn sadd(ks: &Keyspace, key: &str, members: &[&str]) -> Output {
    run(ks, SetOp::Add { key: b(key), members: members.iter().map(|m| b(m)).collect() })
}

/// The members under `key`, sorted; `None` if the key is absent.
fn members(ks: &Keyspace, key: &str) -> Option<Vec<Vec<u8>>> {
    ks.get(key.as_bytes(), NOW, |e| match e {
        Some(Entry { value: Value::Set(s), .. }) => {
            let mut v: Vec<Vec<u8>> = s.iter().map(<[u8]>::to_vec).collect();
            v.sort();
            Some(v)
        }
        Some(_) => panic!("{key} is not a set"),
        None => None,
    })
}

fn put_string(ks: &Keyspace, key: &str) {
    ks.apply(&Write {
        now_ms: NOW,
        op: Op::Set {
            key: b(key),
            value: b("v"),
            exists: crate::op::Exists::Any,
            ttl: crate::op::TtlChange::Clear,
            get: false,
        },
    });
}

#[test]
fn add_remove_and_the_key_goes_with_its_last_member() {
    let ks = Keyspace::new();
    assert_eq!(sadd(&ks, "s", &["a", "b", "a"]), Output::Int(2));
    assert_eq!(sadd(&ks, "s", &["b", "c"]), Output::Int(1));
    let rem = |members: &[&str]| run(&ks, SetOp::Rem { key: b("s"), members: members.iter().map(|m| b(m)).collect() });
    assert_eq!(rem(&["a", "zz"]), Output::Int(1));
    assert_eq!(rem(&["b", "c", "c"]), Output::Int(2));
    assert_eq!(members(&ks, "s"), None);
    assert_eq!(ks.used_memory(), 0, "memory accounting returns to zero");
    assert_eq!(ks.key_count(), 0);
    assert_eq!(rem(&["a"]), Output::Int(0));
    put_string(&ks, "str");
    assert_eq!(sadd(&ks, "str", &["a"]), Output::Err(OpError::WrongType));
    assert_eq!(run(&ks, SetOp::Rem { key: b("str"), members: vec![b("a")] }), Output::Err(OpError::WrongType));
}

#[test]
fn pop_is_deterministic_and_bounded_by_the_set() {
    let fill = |ks: &Keyspace| sadd(ks, "s", &["a", "b", "c", "d", "e", "f"]);
    let pop = |ks: &Keyspace, count, seed| run(ks, SetOp::Pop { key: b("s"), count, seed });
    let (k1, k2) = (Keyspace::new(), Keyspace::new());
    fill(&k1);
    fill(&k2);
    for seed in 0..2 {
        assert_eq!(pop(&k1, Some(2), seed), pop(&k2, Some(2), seed), "same seed, same members");
    }
    assert_eq!(members(&k1, "s"), members(&k2, "s"));
    assert_eq!(members(&k1, "s").map(|m| m.len()), Some(2));
    assert_eq!(pop(&k1, Some(0), 9), Output::Array(vec![]));
    assert_eq!(pop(&k1, None, 9), pop(&k2, None, 9));
    let Output::Array(last) = pop(&k1, Some(1), 9) else { panic!("array") };
    assert_eq!(last.len(), 1, "a count equal to the size pops the whole set");
    assert_eq!(members(&k1, "s"), None);
    fill(&k1);
    let Output::Array(all) = pop(&k1, Some(100), 9) else { panic!("array") };
    assert_eq!(all.len(), 6);
    assert_eq!(members(&k1, "s"), None, "popping everything deletes the key");
    assert_eq!(k1.used_memory(), 0);
    assert_eq!(pop(&k1, None, 1), Output::Nil);
    assert_eq!(pop(&k1, Some(3), 1), Output::Array(vec![]));
    sadd(&k1, "s", &["only"]);
    assert_eq!(pop(&k1, None, 5), Output::Bulk(b("only")));
    assert_eq!(members(&k1, "s"), None);
    put_string(&k1, "s");
    assert_eq!(pop(&k1, Some(0), 1), Output::Err(OpError::WrongType));
    assert_eq!(pop(&k1, None, 1), Output::Err(OpError::WrongType));
}

#[test]
fn move_between_sets() {
    let ks = Keyspace::new();
    let mv = |src: &str, dst: &str, m: &str| run(&ks, SetOp::Move { src: b(src), dst: b(dst), member: b(m) });
    sadd(&ks, "a", &["x", "y"]);
    put_string(&ks, "str");
    assert_eq!(mv("missing", "str", "x"), Output::Int(0), "a missing source wins over a wrong destination");
    assert_eq!(mv("a", "str", "zz"), Output::Err(OpError::WrongType));
    assert_eq!(mv("str", "a", "x"), Output::Err(OpError::WrongType));
    assert_eq!(mv("a", "a", "x"), Output::Int(1));
    assert_eq!(mv("a", "a", "zz"), Output::Int(0));
    assert_eq!(mv("a", "b", "zz"), Output::Int(0));
    assert_eq!(members(&ks, "b"), None);
    assert_eq!(mv("a", "b", "x"), Output::Int(1));
    assert_eq!(mv("a", "b", "y"), Output::Int(1));
    assert_eq!(members(&ks, "a"), None);
    assert_eq!(members(&ks, "b"), Some(vec![b"x".to_vec(), b"y".to_vec()]));
}

#[test]
fn store_replaces_the_destination_and_an_empty_result_deletes_it() {
    let ks = Keyspace::new();
    let store = |algebra, dst: &str, keys: &[&str]| {
        run(&ks, SetOp::Store { algebra, dst: b(dst), keys: keys.iter().map(|k| b(k)).collect() })
    };
    sadd(&ks, "a", &["1", "2", "3"]);
    sadd(&ks, "b", &["2", "3", "4"]);
    put_string(&ks, "dst");
    assert_eq!(store(Algebra::Inter, "dst", &["a", "b"]), Output::Int(2));
    assert_eq!(members(&ks, "dst"), Some(vec![b"2".to_vec(), b"3".to_vec()]));
    put_string(&ks, "str");
    assert_eq!(store(Algebra::Union, "dst", &["a", "missing", "str"]), Output::Err(OpError::WrongType));
    assert_eq!(members(&ks, "dst").map(|m| m.len()), Some(2), "a refused store changes nothing");
    assert_eq!(store(Algebra::Diff, "a", &["a", "b"]), Output::Int(1), "the destination may be a source");
    assert_eq!(members(&ks, "a"), Some(vec![b"1".to_vec()]));
    assert_eq!(store(Algebra::Inter, "dst", &["a", "missing"]), Output::Int(0));
    assert_eq!(members(&ks, "dst"), None);
    assert_eq!(store(Algebra::Diff, "b", &["b", "b"]), Output::Int(0));
    assert_eq!(members(&ks, "b"), None);
}

/// The in-apply algebra (sequential borrows) and the read algebra (all sets at once)
/// agree on random inputs, and both agree with a plain model.
#[test]
fn store_and_read_algebra_agree() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..200 {
        let ks = Keyspace::new();
        let names = ["k0", "k1", "k2", "k3"];
        for n in names {
            let ms: Vec<String> = (0..rng.random_range(0..12)).map(|_| rng.random_range(0..16).to_string()).collect();
            if !ms.is_empty() {
                sadd(&ks, n, &ms.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        let keys: Vec<&str> = (0..rng.random_range(1..5)).map(|_| names[rng.random_range(0..4)]).collect();
        for algebra in [Algebra::Inter, Algebra::Union, Algebra::Diff] {
            let sets: Vec<Option<SetValue>> = keys
                .iter()
                .map(|k| members(&ks, k).map(|m| m.iter().map(|x| x.as_slice()).collect::<SetValue>()))
                .collect();
            let refs: Vec<Option<&SetValue>> = sets.iter().map(Option::as_ref).collect();
            let mut read: Vec<Vec<u8>> = combine(algebra, &refs).into_iter().map(<[u8]>::to_vec).collect();
            read.sort();
            if algebra == Algebra::Inter {
                assert_eq!(inter_card(&refs, 0), read.len());
                assert_eq!(inter_card(&refs, 2), read.len().min(2));
            }
            let model: std::collections::BTreeSet<Vec<u8>> = match algebra {
                Algebra::Union => sets.iter().flatten().flat_map(|s| s.iter().map(<[u8]>::to_vec)).collect(),
                Algebra::Inter => (0..16)
                    .map(|i| i.to_string().into_bytes())
                    .filter(|m| sets.iter().all(|s| s.as_ref().is_some_and(|s| s.contains(m))))
                    .collect(),
                Algebra::Diff => (0..16)
                    .map(|i| i.to_string().into_bytes())
                    .filter(|m| sets[0].as_ref().is_some_and(|s| s.contains(m)))
                    .filter(|m| sets[1..].iter().flatten().all(|s| !s.contains(m)))
                    .collect(),
            };
            assert_eq!(read, model.iter().cloned().collect::<Vec<_>>(), "round {round} {algebra:?} {keys:?}");
            let out = run(&ks, SetOp::Store { algebra, dst: b("dst"), keys: keys.iter().map(|k| b(k)).collect() });
            assert_eq!(out, Output::Int(read.len() as i64));
            assert_eq!(members(&ks, "dst").unwrap_or_default(), read, "round {round} {algebra:?} {keys:?}");
        }
    }
}

#[test]
fn for_each_key_lists_sources_and_destination() {
    let op = SetOp::Store { algebra: Algebra::Union, dst: b("d"), keys: vec![b("a"), b("b")] };
    let mut seen = Vec::new();
    op.for_each_key(&mut |k| seen.push(k.to_vec()));
    assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec(), b"d".to_vec()]);
    let op = SetOp::Move { src: b("s"), dst: b("d"), member: b("m") };
    let mut seen = Vec::new();
    op.for_each_key(&mut |k| seen.push(k.to_vec()));
    assert_eq!(seen, vec![b"s".to_vec(), b"d".to_vec()]);
}
