//! Header-aligned rows (CSV, or Parquet through `parquet.rs`) to graph commands. The file
//! formats (also in docs/benchmarks.md, "Bulk load"):
//!
//! - **Vertices**: a header row, then one vertex per row. The column named `id` (required)
//!   is the vertex id, a column named `label` (optional) its label, and every other column
//!   a property named by its header. An empty cell sets nothing (sparse properties); a row
//!   must set a label or at least one property, because `V.SET` needs one.
//!   Row -> `V.SET id [LABEL label] field value ...`.
//! - **Edges**: a header row whose first three columns are `src,type,dst`, then one edge
//!   per row. A column named `rank` (optional) is the rank (an empty cell: the server's
//!   default, the write's time); every other column is an edge property (empty cells are
//!   skipped; with no property set the row sends no `PROPS`, so re-loading an edge keeps
//!   its properties). Row -> `E.ADD src type dst [RANK r] [PROPS field value ...]`.
//!
//! Column names are matched case-insensitively and must be unique, so no property can be
//! mistaken for the `LABEL`, `RANK` or `PROPS` keyword. Every row must have exactly as many
//! cells as the header; a row that does not, or misses an id or holds a rank that is not a
//! 64-bit integer, is an error for that row and nothing is sent for it.

use super::resp::encode;

/// Which file a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vertices,
    Edges,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vertices => "vertices",
            Kind::Edges => "edges",
        }
    }
}

/// Where each part of a row is, read from the header.
#[derive(Debug)]
pub struct Layout {
    kind: Kind,
    width: usize,
    id: usize,
    label: Option<usize>,
    rank: Option<usize>,
    /// (column, property name)
    props: Vec<(usize, Vec<u8>)>,
}

impl Layout {
    pub fn from_header(kind: Kind, header: &csv::ByteRecord) -> Result<Layout, String> {
        let names: Vec<String> =
            header.iter().map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase()).collect();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(format!("header column {} has no name", i + 1));
            }
            if names[..i].contains(n) {
                return Err(format!("header names column {n:?} twice"));
            }
        }
        let find = |name: &str| names.iter().position(|n| n == name);
        let mut layout = Layout { kind, width: names.len(), id: 0, label: None, rank: None, props: Vec::new() };
        let reserved: &[usize] = match kind {
            Kind::Vertices => {
                layout.id = find("id").ok_or("a vertices header needs an `id` column")?;
                layout.label = find("label");
                &[]
            }
            Kind::Edges => {
                if names.len() < 3 || names[..3] != ["src", "type", "dst"] {
                    return Err("an edges header starts with `src,type,dst`".into());
                }
                layout.rank = find("rank");
                &[0, 1, 2]
            }
        };
        for (i, cell) in header.iter().enumerate() {
            let special = reserved.contains(&i)
                || (kind == Kind::Vertices && i == layout.id)
                || Some(i) == layout.label
                || Some(i) == layout.rank;
            if !special {
                layout.props.push((i, String::from_utf8_lossy(cell).trim().as_bytes().to_vec()));
            }
        }
        Ok(layout)
    }

    /// Appends the row's command to `out` and returns the routing key (the first id).
    pub fn command<'r>(&self, row: &'r csv::ByteRecord, out: &mut Vec<u8>) -> Result<&'r [u8], String> {
        if row.len() != self.width {
            return Err(format!("{} cells, the header has {}", row.len(), self.width));
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(4 + 2 * self.props.len());
        let key = match self.kind {
            Kind::Vertices => {
                let id = &row[self.id];
                if id.is_empty() {
                    return Err("empty id".into());
                }
                args.extend([&b"V.SET"[..], id]);
                if let Some(l) = self.label.map(|c| &row[c]).filter(|l| !l.is_empty()) {
                    args.extend([&b"LABEL"[..], l]);
                }
                self.push_props(row, &mut args);
                if args.len() == 2 {
                    return Err("no label and no property (V.SET needs one)".into());
                }
                id
            }
            Kind::Edges => {
                for (c, name) in [(0, "src"), (1, "type"), (2, "dst")] {
                    if row[c].is_empty() {
                        return Err(format!("empty {name}"));
                    }
                }
                args.extend([&b"E.ADD"[..], &row[0], &row[1], &row[2]]);
                if let Some(r) = self.rank.map(|c| &row[c]).filter(|r| !r.is_empty()) {
                    let valid = std::str::from_utf8(r).ok().and_then(|s| s.parse::<i64>().ok()).is_some();
                    if !valid {
                        return Err(format!("rank {:?} is not a 64-bit integer", String::from_utf8_lossy(r)));
                    }
                    args.extend([&b"RANK"[..], r]);
                }
                let before = args.len();
                args.push(b"PROPS");
                self.push_props(row, &mut args);
                if args.len() == before + 1 {
                    args.pop();
                }
                &row[0]
            }
        };
        encode(out, &args);
        Ok(key)
    }

    fn push_props<'a>(&'a self, row: &'a csv::ByteRecord, args: &mut Vec<&'a [u8]>) {
        for (c, name) in &self.props {
            let v = &row[*c];
            if !v.is_empty() {
                args.extend([name.as_slice(), v]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(cells: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(cells.to_vec())
    }

    fn cmd(layout: &Layout, cells: &[&str]) -> Result<String, String> {
        let mut out = Vec::new();
        let r = rec(cells);
        layout.command(&r, &mut out).map(|_| String::from_utf8(out).unwrap())
    }

    #[test]
    fn vertex_rows() {
        let l = Layout::from_header(Kind::Vertices, &rec(&["id", "Label", "name"])).unwrap();
        assert_eq!(
            cmd(&l, &["a", "person", "ann"]).unwrap(),
            "*6\r\n$5\r\nV.SET\r\n$1\r\na\r\n$5\r\nLABEL\r\n$6\r\nperson\r\n$4\r\nname\r\n$3\r\nann\r\n"
        );
        assert_eq!(cmd(&l, &["a", "", "ann"]).unwrap(), "*4\r\n$5\r\nV.SET\r\n$1\r\na\r\n$4\r\nname\r\n$3\r\nann\r\n");
        assert!(cmd(&l, &["a", "", ""]).unwrap_err().contains("no label"));
        assert!(cmd(&l, &["", "x", ""]).unwrap_err().contains("empty id"));
        assert!(cmd(&l, &["a", "x"]).unwrap_err().contains("2 cells"));
        assert!(Layout::from_header(Kind::Vertices, &rec(&["name"])).is_err());
        assert!(Layout::from_header(Kind::Vertices, &rec(&["id", "x", "X"])).is_err());
    }

    #[test]
    fn edge_rows() {
        let l = Layout::from_header(Kind::Edges, &rec(&["src", "type", "dst", "rank", "w"])).unwrap();
        assert_eq!(
            cmd(&l, &["a", "t", "b", "7", ""]).unwrap(),
            "*6\r\n$5\r\nE.ADD\r\n$1\r\na\r\n$1\r\nt\r\n$1\r\nb\r\n$4\r\nRANK\r\n$1\r\n7\r\n"
        );
        assert!(cmd(&l, &["a", "t", "b", "", "3"]).unwrap().ends_with("$5\r\nPROPS\r\n$1\r\nw\r\n$1\r\n3\r\n"));
        assert!(cmd(&l, &["a", "t", "b", "x1", ""]).unwrap_err().contains("rank"));
        assert!(cmd(&l, &["a", "", "b", "", ""]).unwrap_err().contains("empty type"));
        assert!(Layout::from_header(Kind::Edges, &rec(&["dst", "type", "src"])).is_err());
    }
}
