//! Writes the seed corpora to `fuzz/seeds/TARGET/` (replacing what is there):
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.
#![deny(unsafe_op_in_unsafe_fn)]

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, seeds) in fuzz_harness::seeds::all() {
        let dir = root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}
