// JS anchor for `cargo bench --bench log`: JS Hypercore 10 append throughput.
// usage: node log-bench.js <10-31|10-38> <dir> <single-count> <batch-count> <batch-size> <block-bytes>
// prints JSON: {version, diskSingle, diskBatch, memSingle, memBatch} in blocks per second
'use strict'
const path = require('path')
const versions = { '10-31': 'hypercore-10-31', '10-38': 'hypercore-10-38' }
const [version, dir, singleN, batchN, batchSize, blockBytes] = process.argv.slice(2)
const Hypercore = require(versions[version])
const RAM = require('random-access-memory')

async function single (storage, n, block) {
  const core = new Hypercore(storage)
  await core.ready()
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await core.append(block)
  const s = Number(process.hrtime.bigint() - t) / 1e9
  await core.close()
  return n / s
}

async function batched (storage, n, size, block) {
  const core = new Hypercore(storage)
  await core.ready()
  const batch = new Array(size).fill(block)
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await core.append(batch)
  const s = Number(process.hrtime.bigint() - t) / 1e9
  await core.close()
  return (n * size) / s
}

async function main () {
  const block = Buffer.alloc(Number(blockBytes), 7)
  const out = {
    version,
    diskSingle: await single(path.join(dir, version + '-single'), Number(singleN), block),
    diskBatch: await batched(path.join(dir, version + '-batch'), Number(batchN), Number(batchSize), block),
    memSingle: await single(() => new RAM(), Number(singleN), block),
    memBatch: await batched(() => new RAM(), Number(batchN), Number(batchSize), block)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch(err => { process.stderr.write(String(err.stack || err) + '\n'); process.exit(2) })
