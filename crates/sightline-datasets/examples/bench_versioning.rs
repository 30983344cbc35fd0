//! Versioning benchmark: hash and store N small files (default 20 000 × 1 KiB) the way a
//! dataset version does (parallel md5, DVC 3 objects, `.dir` manifest), cold and then warm
//! (unchanged files skipped by the (path, size, mtime) cache), with a breakdown of the cold
//! time (walk, read + md5 alone, the `.dir` object, saving the cache).
//!
//! `cargo run --release -p sightline-datasets --example bench_versioning -- <folder> [n] [runs]`
//! creates `<folder>/data` if missing and prints seconds (median of `runs`, default 3, each on
//! a new store folder `<folder>/sightline-store-<pid>-<run>`, left in place) and the `.dir`
//! id; compare with `cd <folder> && dvc init --no-scm && time dvc add data` (same id; see
//! docs/perf.md for the procedure that gives both tools the same file-system conditions).

use sightline_datasets::dvc::{HashCache, ObjectStore, add_tree, dir_object_bytes, hash_tree};
use std::io::Write;
use std::time::Instant;

/// CPU seconds (user + system, all threads) of this process so far, from `/proc/self/stat`
/// (Linux, 100 ticks per second); 0 elsewhere. On a shared machine CPU time is steadier than
/// wall time.
fn cpu_seconds() -> f64 {
    fs_err::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: bench_versioning <folder> [n] [runs]")?,
    );
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let data = root.join("data");
    if !data.is_dir() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            let dir = data.join(format!("{:03}", i % 200));
            fs_err::create_dir_all(&dir)?;
            let mut f = fs_err::File::create(dir.join(format!("{i:06}.bin")))?;
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
    // Each run writes a new store folder, and nothing is deleted: on ext4 without a journal
    // (this machine) creating files shortly after many were deleted is several times slower
    // (the inode allocator skips inodes deleted in the last 60-360 s one by one, in
    // `recently_deleted()`), so deleting the previous run's store would make the next run
    // measure that deletion. Remove `<folder>/sightline-store-*` after the benchmark.
    let pid = std::process::id();
    let stores: Vec<std::path::PathBuf> = (0..runs.max(1))
        .map(|r| root.join(format!("sightline-store-{pid}-{r}")))
        .collect();
    let (mut cold, mut warm, mut walk, mut hash_only, mut dir_obj) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cold_cpu, mut warm_cpu) = (Vec::new(), Vec::new());
    let mut oid = String::new();
    let mut files = 0;
    for store_dir in &stores {
        // Walk alone.
        let t = Instant::now();
        let count = walkdir::WalkDir::new(&data)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .count();
        walk.push(t.elapsed().as_secs_f64());
        // Read + md5 alone (no store, no cache file).
        let t = Instant::now();
        let entries = hash_tree(&data, &HashCache::in_memory())?;
        hash_only.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let _ = dir_object_bytes(&entries);
        dir_obj.push(t.elapsed().as_secs_f64());
        // Cold: everything a new version does (walk, hash, store, .dir, save the cache).
        let store = ObjectStore::new(store_dir);
        let cache = HashCache::load(store_dir.join("hashcache.json"));
        let (t, c) = (Instant::now(), cpu_seconds());
        let (id, entries) = add_tree(&store, &data, &cache)?;
        cache.save()?;
        cold.push(t.elapsed().as_secs_f64());
        cold_cpu.push(cpu_seconds() - c);
        // Warm: nothing changed.
        let cache = HashCache::load(store_dir.join("hashcache.json"));
        let (t, c) = (Instant::now(), cpu_seconds());
        let (id2, _) = add_tree(&store, &data, &cache)?;
        warm.push(t.elapsed().as_secs_f64());
        warm_cpu.push(cpu_seconds() - c);
        assert_eq!(id, id2);
        assert_eq!(count, entries.len());
        oid = id;
        files = entries.len();
    }
    println!("files {files} dir {oid} (median of {runs} runs)");
    println!(
        "sightline cold {:.3} s (cpu {:.2} s), warm (unchanged) {:.3} s (cpu {:.2} s)",
        median(cold),
        median(cold_cpu),
        median(warm),
        median(warm_cpu)
    );
    println!(
        "  parts: walk {:.3} s, read+md5 alone {:.3} s, .dir bytes {:.4} s",
        median(walk),
        median(hash_only),
        median(dir_obj)
    );
    Ok(())
}
