//! Randomized comparison of [`ListValue`] against a `VecDeque<Vec<u8>>` model.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::op::{resolve_index, resolve_range};
use super::{Elem, End, ListValue};

fn seed() -> u64 {
    let seed = std::env::var("PRISM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed} (replay with PRISM_SEED={seed})");
    seed
}

/// Mostly small elements from a small alphabet (so LREM and LINSERT find matches), now
/// and then a large one that needs a chunk of its own.
fn element(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..100) {
        0..=49 => format!("e{}", rng.random_range(0..8)).into_bytes(),
        50..=59 => {
            // Integers (stored packed) and near-integers (stored as strings).
            let texts =
                ["0", "-1", "127", "-129", "70000", "1000000000", "9223372036854775807", "-9223372036854775808"];
            let odd = ["-0", "01", "+1", "9223372036854775808", "1 "];
            match rng.random_range(0..3) {
                0 => odd[rng.random_range(0..odd.len())].into(),
                1 => texts[rng.random_range(0..texts.len())].into(),
                _ => rng.random::<i64>().to_string().into_bytes(),
            }
        }
        60..=89 => (0..rng.random_range(0..300)).map(|_| rng.random::<u8>()).collect(),
        90..=97 => Vec::new(),
        _ => vec![rng.random::<u8>(); rng.random_range(5000..20000)],
    }
}

fn model_remove(m: &mut VecDeque<Vec<u8>>, e: &[u8], count: i64) -> usize {
    let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
    let mut removed = 0;
    if count >= 0 {
        let mut i = 0;
        while i < m.len() && removed < limit {
            if m[i] == e {
                m.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = m.len();
        while i > 0 && removed < limit {
            i -= 1;
            if m[i] == e {
                m.remove(i);
                removed += 1;
            }
        }
    }
    removed
}

/// `long` runs avoid the ops that empty a list at a stroke, so lists grow many chunks.
fn run(seed: u64, steps: usize, long: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut l = ListValue::default();
    let mut m: VecDeque<Vec<u8>> = VecDeque::new();
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.random_range(0..100) {
            0..=24 => {
                let e = element(&mut rng);
                l.push_back(&e);
                m.push_back(e);
            }
            25..=49 => {
                let e = element(&mut rng);
                l.push_front(&e);
                m.push_front(e);
            }
            50..=55 => assert_eq!(l.pop_front(), m.pop_front(), "{ctx}"),
            56..=61 => assert_eq!(l.pop_back(), m.pop_back(), "{ctx}"),
            62..=69 => {
                let e = element(&mut rng);
                l.push_back(&e);
                m.push_back(e);
            }
            70..=74 => {
                let i = rng.random_range(-(m.len() as i64) - 2..m.len() as i64 + 2);
                let e = element(&mut rng);
                match resolve_index(i, m.len()) {
                    Some(i) => {
                        assert!(l.set(i, &e), "{ctx}");
                        m[i] = e;
                    }
                    None => assert!(i.unsigned_abs() as usize >= m.len().max(1) || m.is_empty(), "{ctx}"),
                }
            }
            75..=79 => {
                let pivot = element(&mut rng);
                let e = element(&mut rng);
                let after = rng.random();
                let inserted = l.insert_at_pivot(&pivot, &e, after);
                match m.iter().position(|x| *x == pivot) {
                    Some(p) => {
                        assert!(inserted, "{ctx}");
                        m.insert(if after { p + 1 } else { p }, e);
                    }
                    None => assert!(!inserted, "{ctx}"),
                }
            }
            80..=84 => {
                let e = element(&mut rng);
                let count = if long { [-2, -1, 1, 2][rng.random_range(0..4)] } else { rng.random_range(-3..4) };
                assert_eq!(l.remove_matching(&e, count), model_remove(&mut m, &e, count), "{ctx}");
            }
            85..=86 => {
                // Mostly trims a few from each end, so long runs keep long lists.
                let len = m.len() as i64;
                let (a, b) = if !long && rng.random_range(0..20) == 0 {
                    (rng.random_range(-len - 3..len + 3), rng.random_range(-len - 3..len + 3))
                } else {
                    (rng.random_range(0..4), rng.random_range(-4..1) - 1)
                };
                let (start, n) = resolve_range(a, b, m.len());
                l.retain_range(start, n);
                m = m.iter().skip(start).take(n).cloned().collect();
            }
            87..=95 => {
                if !m.is_empty() {
                    let i = rng.random_range(0..m.len());
                    assert_eq!(l.get(i).map(|e| e.to_vec()).as_ref(), Some(&m[i]), "{ctx}");
                    let n = rng.random_range(0..50);
                    assert!(l.range(i, n).map(|e| e.to_vec()).eq(m.iter().skip(i).take(n).cloned()), "{ctx}");
                }
                assert_eq!(l.get(m.len()), None, "{ctx}");
            }
            _ => {
                assert!(l.iter().map(|e| e.to_vec()).eq(m.iter().cloned()), "{ctx}");
                assert!(l.iter_rev().map(|e| e.to_vec()).eq(m.iter().rev().cloned()), "{ctx}");
            }
        }
        assert_eq!(l.len(), m.len(), "{ctx}");
        if step % 64 == 0 {
            l.check();
        }
    }
    l.check();
    assert!(l.iter().map(|e| e.to_vec()).eq(m.iter().cloned()), "seed {seed}");
}

#[test]
fn matches_a_deque_model() {
    let seed = seed();
    // Short runs stay within a chunk or two; long ones grow lists of many chunks.
    for i in 0..8 {
        run(seed.wrapping_add(i), 3000, false);
    }
    for i in 8..10 {
        run(seed.wrapping_add(i), 25_000, true);
    }
}

#[test]
fn large_list_indexing_and_trim() {
    let mut l = ListValue::default();
    for i in 0..100_000u32 {
        l.push_back(format!("{i:010}").as_bytes());
    }
    l.check();
    assert_eq!(l.get(0), Some(Elem::Bytes(b"0000000000")));
    assert_eq!(l.get(54_321), Some(Elem::Bytes(format!("{:010}", 54_321).as_bytes())));
    assert_eq!(l.get(99_999), Some(Elem::Bytes(b"0000099999")));
    // Chunks fill to about CHUNK_MAX: 12 bytes an element, little slack.
    assert!(l.mem() < 100_000 * 13, "mem {}", l.mem());
    let mut numbers = ListValue::default();
    for i in 0..100_000 {
        numbers.push_front((1_000_000_000 + i).to_string().as_bytes());
    }
    // 32-bit integers pack into 6 bytes.
    assert!(numbers.mem() < 100_000 * 7, "mem {}", numbers.mem());
    assert_eq!(numbers.get(0), Some(Elem::Int(1_000_099_999)));
    l.retain_range(10, 5);
    l.check();
    assert!(l.iter().map(|e| e.to_vec()).eq((10..15).map(|i| format!("{i:010}").into_bytes())));
    assert!(l.mem() < 1000, "mem after trim {}", l.mem());
}

#[test]
fn queue_and_rotation_keep_memory_bounded() {
    let mut l = ListValue::default();
    for i in 0..10_000u32 {
        l.push_front(&i.to_le_bytes());
    }
    let full = l.mem();
    for i in 0..50_000u32 {
        let v = l.pop_back().expect("non-empty");
        l.push_front(&v);
        l.push_front(&i.to_le_bytes());
        l.pop_back();
    }
    l.check();
    assert_eq!(l.len(), 10_000);
    assert!(l.mem() <= full * 2, "mem {} vs {}", l.mem(), full);
    while l.pop_front().is_some() {}
    l.check();
    assert!(l.mem() < 1024, "mem of an emptied list {}", l.mem());
}

#[test]
fn push_pop_by_end() {
    let mut l = ListValue::default();
    l.push(End::Left, b"b");
    l.push(End::Left, b"a");
    l.push(End::Right, b"c");
    assert_eq!(l.pop(End::Right).as_deref(), Some(&b"c"[..]));
    assert_eq!(l.pop(End::Left).as_deref(), Some(&b"a"[..]));
    assert_eq!(l.pop(End::Left).as_deref(), Some(&b"b"[..]));
    assert_eq!(l.pop(End::Left), None);
}

#[test]
fn ranges_resolve_as_redis() {
    assert_eq!(resolve_range(0, -1, 5), (0, 5));
    assert_eq!(resolve_range(-100, 100, 5), (0, 5));
    assert_eq!(resolve_range(3, 1, 5), (0, 0));
    assert_eq!(resolve_range(5, 10, 5), (0, 0));
    assert_eq!(resolve_range(-2, -1, 5), (3, 2));
    assert_eq!(resolve_range(i64::MIN, i64::MAX, 5), (0, 5));
    assert_eq!(resolve_range(0, -6, 5), (0, 0));
    assert_eq!(resolve_index(-1, 5), Some(4));
    assert_eq!(resolve_index(-6, 5), None);
    assert_eq!(resolve_index(5, 5), None);
    assert_eq!(resolve_index(i64::MIN, 5), None);
}
