// A real JS Hypercore (11.39.5 compat core, or 10.38.2) replicating over
// @hyperswarm/secret-stream, for tests/js_hypercore_replication.rs.
// usage: node hypercore_peer.js <11|10-38> <initiator|responder> <port>
// Creates two writable cores: A with blocks "a-block-0".."a-block-4", B with "b-block-0".."b-block-2",
// prints {"event":"ready", "cores":[{key, discoveryKey, length}, ...]}, then dials the port
// and replicates both cores on the one connection. Prints "upload" events for blocks it serves
// and "error"/"close" events.
const net = require('net')
const { out, hex, openCore, replicateOver, runMain } = require('./lib/peer')

const [, , version, role, port] = process.argv

async function makeCore(prefix, count) {
  const core = openCore(version, null, 'vitra-net-')
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
  const s = replicateOver(net.connect(Number(port), '127.0.0.1'), role === 'initiator', [a, b])
  s.on('close', () => setTimeout(() => process.exit(0), 50))
}

runMain(main, 30000)
