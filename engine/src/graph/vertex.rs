//! The vertex value: label, properties, and the vertex's adjacency lists by edge type.
//!
//! Invariants:
//! - Edge types are interned per vertex: `types` holds each type name this vertex has
//!   edges of exactly once, sorted by name (binary search), with its out- and in-list. The
//!   lists hold neighbour ids only, so a type name costs its bytes once per vertex, not
//!   once per edge. A process-global intern table would make a vertex's bytes depend on
//!   the order types were first seen by *this process*, which differs between replicas
//!   and across restarts; per-vertex interning depends only on the vertex's own history,
//!   so apply stays deterministic and a vertex is self-contained (DUMP, migration,
//!   tiering move it alone).
//! - A type whose two lists are both empty is removed.
//! - `bytes` is the running heap estimate of `types` (names and lists); `mem` is O(1).
//! - A vertex may have no label, no properties and no edges: it still exists (E.ADD
//!   creates endpoints that way, and E.DEL does not remove them).
//! - `id` is the key its neighbours' halves name it by, set by the graph writes that
//!   give it edges (and by the cleanup pass after RESTORE / RENAME, see `cleanup`). When a
//!   vertex that has edges is dropped inside a write (DEL, UNLINK, expiry, SET or RESTORE
//!   over it...), its halves are handed to that write's cleanup, which removes the other
//!   ends: this is how neighbours never keep a half naming a vertex that is gone.

use super::edges::EdgeList;
use super::Dir;
use crate::value::HashValue;

/// Bytes charged per edge type a vertex has, with its name: its slot in `types` (sized
/// exactly) and the name's allocation.
fn type_cost(name: &[u8]) -> usize {
    std::mem::size_of::<TypeLists>() + super::edges::alloc_size(name.len())
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypeLists {
    pub name: Box<[u8]>,
    pub out: EdgeList,
    pub inn: EdgeList,
}

impl TypeLists {
    pub fn list(&self, dir: Dir) -> &EdgeList {
        match dir {
            Dir::Out => &self.out,
            Dir::In => &self.inn,
        }
    }
}

/// A vertex value.
#[derive(Debug, Clone, Default)]
pub struct Vertex {
    pub label: Option<Box<[u8]>>,
    pub props: HashValue,
    types: Vec<TypeLists>,
    bytes: usize,
    id: Option<Box<[u8]>>,
}

/// Equal label, properties and halves (the id is bookkeeping about where it is stored).
impl PartialEq for Vertex {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.props == other.props && self.types == other.types
    }
}

impl Drop for Vertex {
    fn drop(&mut self) {
        if !self.types.is_empty() {
            if let Some(id) = self.id.take() {
                super::cleanup::orphan(id, std::mem::take(&mut self.types));
            }
        }
    }
}

/// What [`Vertex::bind`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Already bound to this key (or bound now, with no halves to look at).
    Same,
    /// Restored halves wait for their mirrors: the caller confirms them.
    Restored,
    /// Moved here from another key (RENAME): its halves named the old id and were handed
    /// to the cleanup; the vertex keeps label and properties only.
    Moved,
}

impl Vertex {
    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.label.as_ref().map_or(0, |l| l.len())
            + self.props.mem()
            + self.bytes
            + self.id.as_ref().map_or(0, |i| super::edges::alloc_size(i.len()))
    }

    /// Binds the vertex to the key it is stored under, before a write adds halves to it.
    pub fn bind(&mut self, key: &[u8]) -> Bound {
        match &self.id {
            Some(id) if **id == *key => Bound::Same,
            Some(_) => {
                if let Some(old) = self.id.replace(key.into()) {
                    if !self.types.is_empty() {
                        super::cleanup::orphan(old, std::mem::take(&mut self.types));
                    }
                }
                self.bytes = 0;
                Bound::Moved
            }
            None => {
                self.id = Some(key.into());
                let restored = self.types.iter().any(|t| t.out.unconfirmed() + t.inn.unconfirmed() > 0);
                if restored {
                    Bound::Restored
                } else {
                    Bound::Same
                }
            }
        }
    }

    /// The edge types this vertex has edges of, sorted by name.
    pub fn types(&self) -> &[TypeLists] {
        &self.types
    }

    pub fn list(&self, etype: &[u8], dir: Dir) -> Option<&EdgeList> {
        let i = self.types.binary_search_by(|t| (*t.name).cmp(etype)).ok()?;
        Some(self.types[i].list(dir))
    }

    /// Degree of (type, dir), O(1) after the type lookup.
    pub fn degree(&self, etype: &[u8], dir: Dir) -> usize {
        self.list(etype, dir).map_or(0, |l| l.len())
    }

    /// Total number of halves this vertex holds.
    pub fn total_degree(&self) -> usize {
        self.types.iter().map(|t| t.out.len() + t.inn.len()).sum()
    }

    /// Runs `f` on the (type, dir) list, creating the type if needed and removing it if
    /// both its lists end up empty, with memory kept exact.
    pub fn with_list<R>(&mut self, etype: &[u8], dir: Dir, f: impl FnOnce(&mut EdgeList) -> R) -> R {
        let i = match self.types.binary_search_by(|t| (*t.name).cmp(etype)) {
            Ok(i) => i,
            Err(i) => {
                // Most vertices have one or two types: no doubling slack.
                self.types.reserve_exact(1);
                self.types.insert(i, TypeLists { name: etype.into(), ..TypeLists::default() });
                self.bytes += type_cost(etype);
                i
            }
        };
        let t = &mut self.types[i];
        let list = match dir {
            Dir::Out => &mut t.out,
            Dir::In => &mut t.inn,
        };
        let before = list.mem();
        let r = f(list);
        self.bytes = self.bytes + list.mem() - before;
        if t.out.is_empty() && t.inn.is_empty() {
            self.types.remove(i);
            self.bytes -= type_cost(etype);
            if self.types.is_empty() {
                self.types = Vec::new();
            }
        }
        r
    }

    /// Sets the label; returns nothing as V.SET counts only new properties.
    pub fn set_label(&mut self, label: &[u8]) {
        self.label = Some(label.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_types_are_dropped_and_memory_returns() {
        let mut v = Vertex::default();
        let base = v.mem();
        v.with_list(b"follows", Dir::Out, |l| l.put(b"x", 1, None));
        v.with_list(b"follows", Dir::In, |l| l.put(b"y", 1, None));
        v.with_list(b"likes", Dir::Out, |l| l.put(b"x", 1, None));
        assert_eq!(v.types().len(), 2);
        assert_eq!(v.degree(b"follows", Dir::Out), 1);
        assert_eq!(v.total_degree(), 3);
        v.with_list(b"follows", Dir::Out, |l| l.remove(b"x"));
        assert_eq!(v.types().len(), 2, "in-list still holds a half");
        v.with_list(b"follows", Dir::In, |l| l.remove(b"y"));
        v.with_list(b"likes", Dir::Out, |l| l.remove(b"x"));
        // A lookup of a missing type through with_list must not leave it behind.
        v.with_list(b"none", Dir::Out, |l| l.remove(b"x"));
        assert!(v.types().is_empty());
        assert_eq!(v.mem(), base);
    }
}
