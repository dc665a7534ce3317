//! The value types a key can hold, and their memory accounting.
//!
//! Every value knows its approximate heap footprint in O(1) (collections keep a running
//! byte count), so the keyspace can account memory per slot on every write without
//! walking a collection. The figures approximate what the allocator really holds; they
//! drive `used_memory`, `maxmemory` and (later) the choice of partitions to spill.
//!
//! Strings, keys, hash fields and values are [`CompactBytes`]: inline up to 23 bytes, so a
//! short string costs only the map bucket that holds it (see `compact`). The per-key and
//! per-field charges below are calibrated against the process's real growth (RSS, with
//! mimalloc) for that layout.

use std::hash::{BuildHasher, Hash};

use indexmap::IndexMap;

use crate::compact::CompactBytes;

pub type FastHasher = foldhash::fast::RandomState;

/// Bytes charged per key on top of the heap bytes of its key and value
/// ([`CompactBytes::heap_bytes`], [`Value::mem`]): its share of the slot table.
///
/// Calibrated against the release binary (mimalloc), 1M keys of 14 bytes with 10-byte
/// values, both inline (`bench/scripts/memory-compare --only strings`, docs/benchmarks.md):
/// the process grows by 113-120 bytes per key once mimalloc has purged what it freed.
/// The arithmetic behind it: a table bucket is 64 bytes (cached hash 8, key 24, entry 32);
/// 1M keys spread over 16384 slot tables is about 61 per table, whose entry vector then
/// holds 63 or 94 buckets ([`reserve_one`]'s steps) and whose hash index 128 slots of 9
/// bytes: about 102 bytes per key after mimalloc's size-class rounding; the rest is the
/// tables' earlier, smaller vectors left free in partly used allocator pages.
pub const ENTRY_OVERHEAD: usize = 116;
/// Bytes charged per field of a hash on top of the heap bytes of its field and value.
///
/// Calibrated as [`ENTRY_OVERHEAD`], on one hash of 1M fields (10-byte fields and values,
/// inline): 80-90 bytes per field once purged. Arithmetic: 1.05M buckets of 56 bytes
/// (hash 8, field 24, value 24) is 59 bytes per field, and the hash index's 2^21 slots of
/// 9 bytes another 19.
pub const FIELD_OVERHEAD: usize = 84;

/// Makes room for one more entry in an index map before an insert. indexmap by itself
/// grows its entry vector to the capacity of its hash index, which doubles: right after a
/// doubling up to half of the entries (64 bytes each in a slot table) are empty. Growing
/// the entries by half their length instead keeps that spare room at a third at most,
/// still amortized O(1) per insert (each entry is moved about twice on average).
#[inline]
pub(crate) fn reserve_one<K: Hash + Eq, V, S: BuildHasher>(map: &mut IndexMap<K, V, S>) {
    if map.len() == map.capacity() {
        map.reserve_exact((map.len() / 2).max(3));
    }
}

/// The value stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(CompactBytes),
    Hash(Box<HashValue>),
    Set(Box<crate::set::SetValue>),
    ZSet(Box<crate::zset::ZSetValue>),
    List(Box<crate::list::ListValue>),
    Vertex(Box<crate::graph::Vertex>),
}

/// The name `TYPE` reports for each kind of value.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Hash,
    Set,
    ZSet,
    List,
    Vertex,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Hash => "hash",
            ValueKind::Set => "set",
            ValueKind::ZSet => "zset",
            ValueKind::List => "list",
            ValueKind::Vertex => "vertex",
        }
    }

    /// Parses a `TYPE` name as given to `SCAN ... TYPE`, case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<ValueKind> {
        [ValueKind::String, ValueKind::Hash, ValueKind::Set, ValueKind::ZSet, ValueKind::List, ValueKind::Vertex]
            .into_iter()
            .find(|k| k.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

impl Value {
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Str(_) => ValueKind::String,
            Value::Hash(_) => ValueKind::Hash,
            Value::Set(_) => ValueKind::Set,
            Value::ZSet(_) => ValueKind::ZSet,
            Value::List(_) => ValueKind::List,
            Value::Vertex(_) => ValueKind::Vertex,
        }
    }

    /// Approximate heap bytes held by the value.
    pub fn mem(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_bytes(),
            Value::Hash(h) => h.mem(),
            Value::Set(v) => v.mem(),
            Value::ZSet(v) => v.mem(),
            Value::List(v) => v.mem(),
            Value::Vertex(v) => v.mem(),
        }
    }
}

/// A hash: field -> value, in insertion order (which `HSCAN` relies on, see `keyspace`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashValue {
    fields: IndexMap<CompactBytes, CompactBytes, FastHasher>,
    bytes: usize,
}

impl HashValue {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.fields.get(field).map(|v| &**v)
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.fields.contains_key(field)
    }

    /// Sets a field; returns true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.fields.get_mut(field) {
            Some(old) => {
                let new = CompactBytes::new(value);
                self.bytes = self.bytes - old.heap_bytes() + new.heap_bytes();
                *old = new;
                false
            }
            None => {
                let (field, value) = (CompactBytes::new(field), CompactBytes::new(value));
                self.bytes += field_mem(&field, &value);
                reserve_one(&mut self.fields);
                self.fields.insert(field, value);
                true
            }
        }
    }

    /// Removes a field; returns true if it existed.
    ///
    /// Uses swap-removal: the last field takes the removed one's position. `HSCAN`
    /// iterates positions from the end towards the start so that this never hides a field
    /// present for the whole scan (see [`crate::keyspace::scan_positions`]).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.fields.swap_remove_entry(field) {
            Some((f, v)) => {
                self.bytes -= field_mem(&f, &v);
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(f, v)| (&**f, &**v))
    }

    /// The field at a position, `0..len()`.
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.fields.get_index(i).map(|(f, v)| (&**f, &**v))
    }

    pub fn mem(&self) -> usize {
        self.bytes + std::mem::size_of::<Self>()
    }
}

/// What one field of a hash is charged.
#[inline]
fn field_mem(field: &CompactBytes, value: &CompactBytes) -> usize {
    field.heap_bytes() + value.heap_bytes() + FIELD_OVERHEAD
}
