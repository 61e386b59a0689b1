// A JS peer holding a Vitra database JS wrote: it opens every core of a JS Vitra 0.1.3 data
// directory (`<dir>/cores/<dk[0..2]>/<dk[2..4]>/<discovery key>/`, the files JS Vitra's
// pre-release Hypercore 10 wrote) with JS Hypercore 10.38.2 as it finds them on disk, and
// serves them all on one connection per peer, as JS Vitra (corestore) does: loopback TCP,
// @hyperswarm/secret-stream (we are the responder), `core.replicate(stream)` for the index and
// every oplog. For tests/js_serves_a_vitra_database.rs.
// usage: [SERVE_VITRA_BOOTSTRAP=HOST:PORT] node serve_vitra_database.js <dir> [11 <secret key hex>...]
//   With "11" and the cores' secret keys (64 bytes hex each, libsodium layout), JS Hypercore
//   11.39.5 (compat cores, its own storage) serves instead: each core is written anew under its
//   key pair with the blocks read from <dir>, so keys, blocks and trees stay JS Vitra's and the
//   heads are signed by Hypercore 11.
//   Prints {"event":"ready","port","cores":[{"key","length","fork"}]} once listening on
//   127.0.0.1 (any free port), then "connect"/"close"/"error" per peer; exits when stdin closes.
// Events: "ready", "connect", "error", "close", "fatal", "timeout".
const net = require('net')
const fs = require('fs')
const path = require('path')
const Hypercore = require('hypercore-10-38')
const { out, hex, tempDir, replicateOver, runMain } = require('./lib/peer')

const [, , dir, rewrite, ...secrets] = process.argv

// Every `cores/xx/yy/<discovery key>` directory of the data directory.
function coreDirs (root) {
  const found = []
  const sub = (d) => fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory())
  for (const a of sub(root)) {
    for (const b of sub(path.join(root, a.name))) {
      for (const c of sub(path.join(root, a.name, b.name))) {
        found.push(path.join(root, a.name, b.name, c.name))
      }
    }
  }
  return found
}

// A Hypercore 11 compat core under `core`'s key pair holding `core`'s blocks.
async function rewriteWith11 (core) {
  const Hypercore11 = require('hypercore')
  const secret = secrets.map((h) => Buffer.from(h, 'hex')).find((s) => s.subarray(32).equals(core.key))
  if (!secret) throw new Error('no secret key given for core ' + hex(core.key))
  const blocks = []
  for (let i = 0; i < core.length; i++) blocks.push(await core.get(i))
  const storage = tempDir('vitra-serve-11-')
  const keyPair = { publicKey: secret.subarray(32), secretKey: secret }
  const fresh = new Hypercore11(storage, { compat: true, keyPair })
  await fresh.ready()
  await fresh.append(blocks)
  await core.close()
  return fresh
}

async function main () {
  const dirs = coreDirs(path.join(dir, 'cores'))
  if (dirs.length === 0) throw new Error('no cores under ' + path.join(dir, 'cores'))
  const cores = []
  for (const d of dirs) {
    const core = new Hypercore(d, { createIfMissing: false })
    await core.ready()
    if (hex(core.discoveryKey) !== path.basename(d)) {
      throw new Error('core in ' + d + ' has discovery key ' + hex(core.discoveryKey))
    }
    cores.push(core)
  }
  if (rewrite === '11') {
    for (let i = 0; i < cores.length; i++) cores[i] = await rewriteWith11(cores[i])
  } else if (rewrite !== undefined) {
    throw new Error('unknown option ' + rewrite)
  }
  // SERVE_VITRA_BOOTSTRAP=HOST:PORT: also announce every core's discovery key on that DHT
  // (as JS Vitra's swarm does) and replicate them all on each Hyperswarm connection.
  const bootstrap = process.env.SERVE_VITRA_BOOTSTRAP
  if (bootstrap) {
    const Hyperswarm = require('hyperswarm')
    const [host, port] = bootstrap.split(':')
    const swarm = new Hyperswarm({ bootstrap: [{ host, port: Number(port) }] })
    swarm.on('connection', (socket) => {
      socket.on('error', (err) => out({ event: 'error', message: err.message }))
      for (const core of cores) core.replicate(socket)
      out({ event: 'connect' })
    })
    for (const core of cores) swarm.join(core.discoveryKey, { server: true, client: false })
    await swarm.flush()
  }
  const server = net.createServer((socket) => replicateOver(socket, false, cores))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  out({
    event: 'ready',
    port: server.address().port,
    cores: cores.map((c) => ({ key: hex(c.key), length: c.length, fork: c.fork }))
  })
  const rl = require('readline').createInterface({ input: process.stdin })
  rl.on('line', () => {})
  rl.on('close', () => process.exit(0))
}

runMain(main, Number(process.env.SERVE_VITRA_TIMEOUT_MS || 120000))
