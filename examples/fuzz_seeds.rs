//! Writes the fuzz targets' seed inputs (`sieve::fuzzing::seeds`) under
//! `fuzz/corpus/<target>/seed-<n>`, beside what fuzzing has added there.
//!
//! `cargo run --example fuzz_seeds [DIR]` (default `fuzz/corpus`).

fn main() -> std::io::Result<()> {
    let root = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let mut n = std::collections::HashMap::<&str, usize>::new();
    for (target, input) in sieve::fuzzing::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let i = n.entry(target).or_default();
        std::fs::write(dir.join(format!("seed-{i}")), input)?;
        *i += 1;
    }
    for (target, count) in &n {
        println!("{target}: {count} seeds");
    }
    Ok(())
}
