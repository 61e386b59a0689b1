// A JS Hyperswarm 4.17 peer that finds a `vitra serve --swarm` on a HyperDHT (e.g. the testnet of
// swarm_testnet.js) by the discovery key of its index and reads the index with Hypercore 11
// (compat core) + Hyperbee 2.8.
// usage: node swarm_index_reader.js <bootstrap HOST:PORT> <index key hex> <length> <path[,path…]> [attempts]
// It joins the index's discovery key as a client (it dials the peers announcing it), replicates
// on every connection and waits until the core has <length> blocks, then reads each path (a
// Vitra path: "/a/b" is the Hyperbee key "a\0b") and prints one JSON line:
//   {event:'read', length, attempts, values}   values maps each path to its msgpack-decoded
//                                              value (null when absent)
// An attempt that does not reach <length> within 20 s is given up (its swarm destroyed,
// printing {event:'attempt', n, outcome}) and a new swarm tries again, up to [attempts]
// (default 5); then it prints {event:'failed', attempts} and exits 1.
const Hyperswarm = require('hyperswarm')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee-2')
const { unpack } = require('msgpackr')
const os = require('os')
const fs = require('fs')
const path = require('path')

const [, , bootstrapArg, keyHex, lengthArg, pathsArg, attemptsArg] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const ATTEMPT_MS = 20_000
const dirs = []
process.on('exit', () => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })

async function attempt (bootstrap, key, length) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitra-swarm-reader-'))
  dirs.push(dir)
  const core = new Hypercore(dir, key, { compat: true })
  await core.ready()
  const swarm = new Hyperswarm({ bootstrap })
  swarm.on('connection', (socket) => {
    socket.on('error', () => {})
    core.replicate(socket)
  })
  await swarm.join(core.discoveryKey, { server: false, client: true }).flushed()
  const deadline = Date.now() + ATTEMPT_MS
  while (core.length < length && Date.now() < deadline) {
    // Ask for updates only once a peer is there (asking before did not let connections form).
    const ask = core.peers.length > 0 ? core.update({ wait: true }) : null
    await Promise.race([ask, new Promise((resolve) => setTimeout(resolve, 500))].filter(Boolean))
  }
  if (core.length >= length) return { core, swarm }
  const outcome = `length ${core.length} of ${length} after ${ATTEMPT_MS} ms, ${swarm.peers.size} peers found, ${swarm.connections.size} connections`
  await swarm.destroy().catch(() => {})
  await core.close().catch(() => {})
  return { outcome }
}

async function main () {
  const [host, port] = bootstrapArg.split(':')
  const bootstrap = [{ host, port: Number(port) }]
  const key = Buffer.from(keyHex, 'hex')
  const length = Number(lengthArg)
  const attempts = Number(attemptsArg || 5)
  for (let n = 1; n <= attempts; n++) {
    const got = await attempt(bootstrap, key, length)
    if (!got.core) {
      out({ event: 'attempt', n, outcome: got.outcome })
      continue
    }
    const bee = new Hyperbee(got.core, { extension: false })
    await bee.ready()
    const values = {}
    for (const p of pathsArg.split(',')) {
      const entry = await bee.get(Buffer.from(p.split('/').filter(Boolean).join('\x00')))
      values[p] = entry ? unpack(entry.value) : null
    }
    out({ event: 'read', length: got.core.length, attempts: n, values })
    await got.swarm.destroy().catch(() => {})
    await got.core.close().catch(() => {})
    process.exit(0)
  }
  out({ event: 'failed', attempts })
  process.exit(1)
}

main().catch((err) => {
  out({ event: 'fatal', message: String((err && err.stack) || err) })
  process.exit(2)
})
