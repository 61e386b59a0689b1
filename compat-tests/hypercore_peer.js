// A real JS Hypercore (11.39.5 compat core, or 10.38.2) replicating over
// @hyperswarm/secret-stream, for tests/js_hypercore_replication.rs.
// usage: node hypercore_peer.js <11|10-38> <initiator|responder> <port>
// Creates two writable cores: A with blocks "a-block-0".."a-block-4", B with "b-block-0".."b-block-2",
// prints {"event":"ready", "cores":[{key, discoveryKey, length}, ...]}, then dials the port
// and replicates both cores on the one connection. Prints "upload" events for blocks it serves
// and "error"/"close" events.
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const SecretStream = require('@hyperswarm/secret-stream')

const [, , version, role, port] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => Buffer.from(b).toString('hex')

async function makeCore(prefix, count) {
  let core
  if (version === '11') {
    const Hypercore = require('hypercore')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitra-net-'))
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
    core = new Hypercore(dir, { compat: true })
  } else if (version === '10-38') {
    const Hypercore = require('hypercore-10-38')
    const RAM = require('random-access-memory')
    core = new Hypercore(RAM)
  } else {
    throw new Error('unknown version ' + version)
  }
  await core.ready()
  for (let i = 0; i < count; i++) await core.append(Buffer.from(`${prefix}-block-${i}`))
  core.on('upload', (index, byteLength) =>
    out({ event: 'upload', core: prefix, index, byteLength })
  )
  return core
}

async function main() {
  const a = await makeCore('a', 5)
  const b = await makeCore('b', 3)
  out({
    event: 'ready',
    cores: [a, b].map((c) => ({
      key: hex(c.key),
      discoveryKey: hex(c.discoveryKey),
      length: c.length
    }))
  })
  const socket = net.connect(Number(port), '127.0.0.1')
  const s = new SecretStream(role === 'initiator', socket)
  a.replicate(s)
  b.replicate(s)
  s.on('connect', () => out({ event: 'connect' }))
  s.on('error', (err) => out({ event: 'error', message: err.message }))
  s.on('close', () => {
    out({ event: 'close' })
    setTimeout(() => process.exit(0), 50)
  })
}

main().catch((err) => {
  out({ event: 'fatal', message: err.stack })
  process.exit(2)
})
setTimeout(() => {
  out({ event: 'timeout' })
  process.exit(3)
}, 30000).unref()
