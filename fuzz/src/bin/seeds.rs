//! Writes the seed corpus: `seeds <dir>` puts each target's seeds in `<dir>/<target>/`,
//! named by a hash of their bytes as libFuzzer names corpus files.

// Linked for the coverage callbacks the fuzz build instruments every binary with.
extern crate libfuzzer_sys;

use std::hash::{Hash, Hasher};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    for (target, seeds) in prism_fuzz::seeds::all() {
        let path = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&path)?;
        for seed in &seeds {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            seed.hash(&mut h);
            std::fs::write(path.join(format!("seed-{:016x}", h.finish())), seed)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}
