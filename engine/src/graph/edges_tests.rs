use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn others(l: &EdgeList) -> Vec<(i64, String)> {
    l.iter().map(|h| (h.rank, String::from_utf8_lossy(h.other).into_owned())).collect()
}

#[test]
fn ordered_by_rank_desc_then_neighbour() {
    let mut l = EdgeList::default();
    assert!(l.put(b"b", 5, None));
    assert!(l.put(b"a", 5, None));
    assert!(l.put(b"c", 9, None));
    assert!(l.put(b"d", -1, None));
    assert_eq!(others(&l), vec![(9, "c".into()), (5, "a".into()), (5, "b".into()), (-1, "d".into())]);
    // Re-adding moves the half and keeps the degree.
    assert!(!l.put(b"d", 10, None));
    assert_eq!(l.len(), 4);
    assert_eq!(others(&l)[0], (10, "d".into()));
    assert!(l.remove(b"a"));
    assert!(!l.remove(b"a"));
    assert_eq!(l.len(), 3);
}

#[test]
fn memory_returns_to_zero() {
    let mut l = EdgeList::default();
    let mut p = HashValue::default();
    p.insert(b"w", b"1");
    l.put(b"x", 1, Some(Some(Box::new(p))));
    l.put(b"x", 2, None);
    assert!(l.get(b"x").and_then(|h| h.props).is_some(), "props kept on rank update");
    l.put(b"y", 3, None);
    l.remove(b"x");
    l.remove(b"y");
    assert_eq!(l.mem(), 0);
}

#[test]
fn seek_after_position_and_max_rank() {
    let mut l = EdgeList::default();
    for i in 0..10 {
        l.put(format!("n{i}").as_bytes(), i, None);
    }
    let after: Vec<i64> = l.iter_from(Some((7, b"n7")), i64::MAX).map(|h| h.rank).collect();
    assert_eq!(after, vec![6, 5, 4, 3, 2, 1, 0]);
    let capped: Vec<i64> = l.iter_from(None, 3).map(|h| h.rank).collect();
    assert_eq!(capped, vec![3, 2, 1, 0]);
    // A cursor whose rank is above max_rank starts at max_rank.
    let both: Vec<i64> = l.iter_from(Some((8, b"n8")), 2).map(|h| h.rank).collect();
    assert_eq!(both, vec![2, 1, 0]);
}

#[test]
fn restored_halves_wait_for_confirmation() {
    let mut l = EdgeList::default();
    assert!(l.put_restored(b"x", 1, None));
    assert!(l.put(b"y", 2, None));
    assert_eq!((l.len(), l.unconfirmed()), (2, 1));
    assert!(!l.get(b"x").unwrap().confirmed);
    assert!(l.confirm(b"x"));
    assert!(!l.confirm(b"x"));
    assert!(l.get(b"x").unwrap().confirmed);
    // A graph write over a restored half confirms it.
    l.put_restored(b"z", 3, None);
    assert!(!l.put(b"z", 4, None));
    assert_eq!(l.unconfirmed(), 0);
}

/// A model-checked run over lists that grow through many chunks, get an index, and
/// shrink back: order, lookups, cursors across inserts, and memory.
#[test]
fn large_lists_match_a_model_across_chunk_boundaries() {
    let seed = 0x5eed_0001;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut l = EdgeList::default();
    // neighbour -> rank
    let mut model: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    let check = |l: &EdgeList, model: &BTreeMap<Vec<u8>, i64>| {
        let mut want: Vec<(i64, Vec<u8>)> = model.iter().map(|(o, r)| (*r, o.clone())).collect();
        want.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let got: Vec<(i64, Vec<u8>)> = l.iter().map(|h| (h.rank, h.other.to_vec())).collect();
        assert_eq!(got, want, "seed {seed}");
        assert_eq!(l.len(), model.len());
        want
    };
    for round in 0..6 {
        let n = if round % 2 == 0 { 3000 } else { 200 };
        for _ in 0..n {
            let id = format!("v:{}", rng.random_range(0..4000u32)).into_bytes();
            // Few distinct ranks, so ties are ordered by neighbour.
            let rank = rng.random_range(-50..50i64) * 1_000_003;
            if rng.random_bool(if round % 2 == 0 { 0.8 } else { 0.1 }) {
                assert_eq!(l.put(&id, rank, None), model.insert(id, rank).is_none());
            } else {
                assert_eq!(l.remove(&id), model.remove(&id).is_some());
            }
        }
        let want = check(&l, &model);
        for (rank, id) in want.iter().step_by(97) {
            assert_eq!(l.get(id).map(|h| h.rank), Some(*rank));
        }
        assert!(l.get(b"absent").is_none());
        // A cursor in the middle: inserts before and after it never make the walk repeat
        // or skip a half that stayed.
        if let Some((crank, cid)) = want.get(want.len() / 2).cloned() {
            for i in 0..300 {
                let id = format!("new:{round}:{i}").into_bytes();
                let rank = rng.random_range(-60..60i64) * 999_983;
                l.put(&id, rank, None);
                model.insert(id, rank);
            }
            let rest: Vec<(i64, Vec<u8>)> =
                l.iter_from(Some((crank, &cid)), i64::MAX).map(|h| (h.rank, h.other.to_vec())).collect();
            let want = check(&l, &model);
            let expect: Vec<_> = want
                .into_iter()
                .filter(|(r, o)| packed::order(*r, o, crank, &cid) == std::cmp::Ordering::Greater)
                .collect();
            assert_eq!(rest, expect, "seed {seed}");
        }
    }
    let ids: Vec<Vec<u8>> = model.keys().cloned().collect();
    for id in ids {
        assert!(l.remove(&id));
    }
    assert!(l.is_empty());
    assert_eq!(l.mem(), 0, "seed {seed}");
}

#[test]
fn small_lists_are_one_buffer_and_large_ones_index() {
    let mut l = EdgeList::default();
    for i in 0..50 {
        l.put(format!("v:{i}").as_bytes(), i, None);
    }
    assert!(matches!(l.repr, Repr::Small(_)));
    assert!(l.mem() < 50 * 16, "{} bytes for 50 short halves", l.mem());
    for i in 50..INDEX_MIN as i64 + 10 {
        l.put(format!("v:{i}").as_bytes(), i, None);
    }
    let Repr::Large(large) = &l.repr else { panic!("large") };
    assert!(large.chunks.len() > 2 && large.index.is_some());
    for i in 0..INDEX_MIN as i64 + 10 {
        assert_eq!(l.get(format!("v:{i}").as_bytes()).map(|h| h.rank), Some(i));
    }
    for i in 20..INDEX_MIN as i64 + 10 {
        l.remove(format!("v:{i}").as_bytes());
    }
    assert!(matches!(l.repr, Repr::Small(_)), "shrunk back to one buffer");
    assert_eq!(l.len(), 20);
}
