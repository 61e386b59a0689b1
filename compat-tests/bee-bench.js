// JS anchor for `cargo bench --bench bee`: JS Hyperbee 1.10.1 on JS Hypercore 10.31.9 with
// random-access-memory. Same workload as benches/bee.rs:
//   1. N puts in batches of 1,000 (keys in scrambled order, 16-byte values);
//   2. N random gets on the resulting N-key tree (same bee, warm), then on a fresh bee opened
//      on the same core (cold cache).
// Usage: node bee-bench.js [N=50000]
const Hypercore = require('hypercore-10-31')
const Hyperbee = require('hyperbee')
const RAM = require('random-access-memory')

const N = Number(process.argv[2] || 50000)
const BATCH = 1000

function key (i) {
  const x = (Math.imul(i, 2654435761) >>> 0).toString(16).padStart(8, '0')
  return Buffer.from('key-' + x)
}

function value (i) {
  const b = Buffer.alloc(16)
  b.writeUInt32BE(i, 0)
  return b
}

async function main () {
  const core = new Hypercore(RAM)
  await core.ready()
  const bee = new Hyperbee(core, { extension: false })
  await bee.ready()

  let t = process.hrtime.bigint()
  for (let i = 0; i < N; i += BATCH) {
    const b = bee.batch()
    for (let j = i; j < Math.min(N, i + BATCH); j++) await b.put(key(j), value(j))
    await b.flush()
  }
  let secs = Number(process.hrtime.bigint() - t) / 1e9
  console.log(`js hyperbee 1.10.1: batched puts (batches of ${BATCH}): ${Math.round(N / secs)} puts/s (${N} in ${secs.toFixed(2)} s)`)

  let seed = 12345
  const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % N }
  t = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    const k = rnd()
    const n = await bee.get(key(k))
    if (!n || n.value.readUInt32BE(0) !== k) throw new Error('wrong value for ' + k)
  }
  secs = Number(process.hrtime.bigint() - t) / 1e9
  console.log(`js hyperbee 1.10.1: random gets on ${N} keys: ${Math.round(N / secs)} gets/s`)

  const fresh = new Hyperbee(core, { extension: false })
  await fresh.ready()
  t = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    const k = rnd()
    const n = await fresh.get(key(k))
    if (!n || n.value.readUInt32BE(0) !== k) throw new Error('wrong value for ' + k)
  }
  secs = Number(process.hrtime.bigint() - t) / 1e9
  console.log(`js hyperbee 1.10.1: random gets on ${N} keys (fresh bee): ${Math.round(N / secs)} gets/s`)
  await core.close()
}

main().catch((err) => { console.error(err); process.exit(1) })
