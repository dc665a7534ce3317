//! Writes a generated [`Graph`] as `prism load` input (CSV, formats in docs/benchmarks.md),
//! so a large graph can be bulk-loaded by the loader and then driven by the workload from
//! the same seed: the rows are exactly what [`load_vertex`](super::load_vertex) and
//! [`add_edge`](super::add_edge) would send for Prism (label `node`, a `data` property,
//! edge type `l`, rank = position in load order + 1).

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::{Graph, EDGE_TYPE};

/// Writes `dir/vertices.csv` and `dir/edges.csv`; returns their paths.
pub fn write_csv(graph: &Graph, dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let vpath = dir.join("vertices.csv");
    let epath = dir.join("edges.csv");
    let mut v = BufWriter::with_capacity(1 << 20, std::fs::File::create(&vpath).context("vertices.csv")?);
    writeln!(v, "id,label,data")?;
    for id in 1..=graph.vertices {
        writeln!(v, "{},node,{}", graph.vid(id), graph.payload)?;
    }
    v.flush()?;
    let mut e = BufWriter::with_capacity(1 << 20, std::fs::File::create(&epath).context("edges.csv")?);
    writeln!(e, "src,type,dst,rank")?;
    for (i, &(s, d)) in graph.edges.iter().enumerate() {
        writeln!(e, "{},{EDGE_TYPE},{},{}", graph.vid(s), graph.vid(d), i + 1)?;
    }
    e.flush()?;
    Ok((vpath, epath))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linkbench::Keys;

    #[test]
    fn csv_rows_are_the_load_commands() {
        let g = Graph::generate(50, 100, 0.9, 4, 7, Keys { groups: 4 });
        let dir = std::env::temp_dir().join(format!("linkbench-export-{}", std::process::id()));
        let (vp, ep) = write_csv(&g, &dir).unwrap();
        let vs = std::fs::read_to_string(vp).unwrap();
        let es = std::fs::read_to_string(ep).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let vl: Vec<&str> = vs.lines().collect();
        assert_eq!(vl.len(), 51);
        assert_eq!(vl[1], format!("v:{{1}}:1,node,{}", g.payload));
        let el: Vec<&str> = es.lines().collect();
        assert_eq!(el.len(), 101);
        let (s, d) = g.edges[0];
        assert_eq!(el[1], format!("{},l,{},1", g.vid(s), g.vid(d)));
    }
}
