//! The value types a key can hold, and their memory accounting.
//!
//! Every value knows its approximate heap footprint in O(1) (collections keep a running
//! byte count), so the keyspace can account memory per slot on every write without
//! walking a collection. The figures approximate what the allocator really holds; they
//! drive `used_memory`, `maxmemory` and (later) the choice of partitions to spill.

use indexmap::IndexMap;

pub type FastHasher = foldhash::fast::RandomState;

/// Bytes charged per key on top of its key and value bytes: the map bucket, the index
/// slot and the allocator headers of the key and value allocations.
pub const ENTRY_OVERHEAD: usize = 80;
/// Bytes charged per field of a hash on top of field and value bytes.
pub const FIELD_OVERHEAD: usize = 56;

/// The value stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
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
            Value::Str(s) => s.capacity(),
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
    fields: IndexMap<Box<[u8]>, Box<[u8]>, FastHasher>,
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
                self.bytes = self.bytes - old.len() + value.len();
                *old = value.into();
                false
            }
            None => {
                self.bytes += field.len() + value.len() + FIELD_OVERHEAD;
                self.fields.insert(field.into(), value.into());
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
                self.bytes -= f.len() + v.len() + FIELD_OVERHEAD;
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
