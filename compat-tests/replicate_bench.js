// JS -> JS replication throughput anchor for benches/replicate.rs: a writer Hypercore with
// <count> blocks of <size> bytes and a reader replica in this process, replicating over
// loopback TCP + @hyperswarm/secret-stream with the reader's default parallel download().
// usage: node replicate_bench.js <11|10-38> <count> <size>
// Prints {"event":"done","version","blocks","bytes","ms"} (ms from connecting to the last block).
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const SecretStream = require('@hyperswarm/secret-stream')

const [, , version, countArg, sizeArg] = process.argv
const count = Number(countArg)
const size = Number(sizeArg)

function open (key) {
  if (version === '11') {
    const Hypercore = require('hypercore')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitra-repl-bench-'))
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
    return key ? new Hypercore(dir, key, { compat: true }) : new Hypercore(dir, { compat: true })
  }
  const Hypercore = require('hypercore-10-38')
  const RAM = require('random-access-memory')
  return key ? new Hypercore(RAM, key) : new Hypercore(RAM)
}

async function main () {
  const writer = open(null)
  await writer.ready()
  const batch = []
  for (let i = 0; i < count; i++) {
    batch.push(Buffer.alloc(size, i % 256))
    if (batch.length === 1000) await writer.append(batch.splice(0))
  }
  if (batch.length) await writer.append(batch)
  const reader = open(writer.key)
  await reader.ready()

  const server = net.createServer((socket) => {
    const s = new SecretStream(false, socket)
    writer.replicate(s)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const start = process.hrtime.bigint()
  const socket = net.connect(server.address().port, '127.0.0.1')
  const s = new SecretStream(true, socket)
  reader.replicate(s)
  await reader.download({ start: 0, end: count }).done()
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  process.stdout.write(JSON.stringify({ event: 'done', version, blocks: count, bytes: count * size, ms }) + '\n')
  process.exit(0)
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ event: 'fatal', message: err.stack }) + '\n')
  process.exit(2)
})
