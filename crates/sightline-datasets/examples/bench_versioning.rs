//! Versioning benchmark: hash and store N small files (default 20 000 × 1 KiB) the way a
//! dataset version does (parallel md5, DVC 3 objects, `.dir` manifest), cold and then warm
//! (unchanged files skipped by the (path, size, mtime) cache).
//!
//! `cargo run --release -p sightline-datasets --example bench_versioning -- <folder> [n]`
//! creates `<folder>/data` if missing and prints seconds and the `.dir` id; compare with
//! `cd <folder> && dvc init --no-scm && time dvc add data` (same id).

use sightline_datasets::dvc::{HashCache, ObjectStore, add_tree};
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = std::path::PathBuf::from(args.next().ok_or("usage: bench_versioning <folder> [n]")?);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let data = root.join("data");
    if !data.is_dir() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            let dir = data.join(format!("{:03}", i % 200));
            std::fs::create_dir_all(&dir)?;
            let mut f = std::fs::File::create(dir.join(format!("{i:06}.bin")))?;
            let mut buf = vec![0u8; 1024];
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            f.write_all(&buf)?;
        }
    }
    let store = ObjectStore::new(root.join("sightline-store"));
    let cache = HashCache::load(root.join("sightline-store/hashcache.json"));
    let t = Instant::now();
    let (oid, entries) = add_tree(&store, &data, &cache)?;
    cache.save()?;
    let cold = t.elapsed().as_secs_f64();
    let cache = HashCache::load(root.join("sightline-store/hashcache.json"));
    let t = Instant::now();
    let (oid2, _) = add_tree(&store, &data, &cache)?;
    let warm = t.elapsed().as_secs_f64();
    assert_eq!(oid, oid2);
    println!("files {} dir {oid}", entries.len());
    println!("sightline cold {cold:.3} s, warm (unchanged) {warm:.3} s");
    Ok(())
}
