//! Index B-tree throughput, printed beside the JS anchor (`node compat-tests/bee-bench.js`,
//! JS Hyperbee 1.10.1 on JS Hypercore 10.31.9 with random-access-memory; same workload):
//! 1. N puts in batches of 1,000 (scrambled key order, 16-byte values) into an in-memory log;
//! 2. N random gets on the resulting N-key tree (same bee, warm cache), then on a fresh bee
//!    over the same blocks (cold cache: every block read from the log and decoded once).
//!
//! Run: `cargo bench --bench bee [-- N]` (N defaults to 50,000).

use std::hint::black_box;
use std::time::Instant;

use vitra::bee::Bee;

const BATCH: usize = 1000;

fn key(i: u32) -> Vec<u8> {
    format!("key-{:08x}", i.wrapping_mul(2654435761)).into_bytes()
}

fn value(i: u32) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..4].copy_from_slice(&i.to_be_bytes());
    v
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);

    let mut bee = Bee::new(Vec::<Vec<u8>>::new());
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = bee.batch();
        for j in i..(i + BATCH as u32).min(n) {
            b.put(&key(j), Some(&value(j))).expect("put");
        }
        b.flush().expect("flush");
        i += BATCH as u32;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "rust bee: batched puts (batches of {BATCH}): {:.0} puts/s ({n} in {secs:.2} s)   [JS anchor: ~23,000/s; goal 5x]",
        n as f64 / secs
    );

    let mut seed: u32 = 12345;
    let mut rnd = || {
        seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
        seed % n
    };
    let gets = |bee: &Bee<Vec<Vec<u8>>>, rnd: &mut dyn FnMut() -> u32| {
        let t = Instant::now();
        for _ in 0..n {
            let k = rnd();
            let e = bee.get(&key(k)).expect("get").expect("present");
            assert_eq!(
                e.value.as_deref().map(|v| &v[..4]),
                Some(&k.to_be_bytes()[..])
            );
            black_box(e);
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let warm = gets(&bee, &mut rnd);
    println!(
        "rust bee: random gets on {n} keys: {warm:.0} gets/s   [JS anchor: ~3,000/s; goal 5x]"
    );
    let fresh = Bee::new(bee.into_log());
    let cold = gets(&fresh, &mut rnd);
    println!("rust bee: random gets on {n} keys (fresh bee): {cold:.0} gets/s");
}
