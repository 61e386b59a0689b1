// A local HyperDHT testnet (@hyperswarm/testnet, 127.0.0.1 only) for tests that drive the `vitra`
// binary with --swarm --bootstrap, and a JS Hyperswarm 4.17 peer that finds a `vitra serve
// --swarm` there and reads its index with Hypercore 11 (compat core) + Hyperbee 2.8.
// usage: node swarm_testnet.js [bootstrap-port]
// Prints JSON lines on stdout:
//   {event:'testnet', bootstrap:'127.0.0.1:PORT'}   the testnet is up (first line)
//   {event:'joined', n}                             attempt n joined the topic (flushed)
//   {event:'attempt', n, outcome}                   one JS attempt that did not get the index
//   {event:'read', length, attempts, values}        the index reached the length; values maps
//                                                   each asked path to its msgpack-decoded value
//                                                   (null when absent)
//   {event:'failed', attempts}                      every attempt failed
// stdin commands, one a line:
//   "read KEYHEX LENGTH PATH[,PATH…] MODE [ATTEMPTS]"  JS joins the discovery key of core KEYHEX
//       as a client (MODE "client": it dials the peers announcing it) or as server and client
//       (MODE "both": it also announces, so peers that look the key up later dial it, as JS
//       Vitra joins), replicates on every connection, waits until the core has
//       LENGTH blocks and reads PATHs (Vitra paths: "/a/b" is the Hyperbee key "a\0b"). An
//       attempt that does not reach LENGTH within 20 s is given up (swarm destroyed) and a new
//       swarm tries again, up to ATTEMPTS (default 5) times.
//   "poke HOST:PORT N"                              one raw DHT request with command N from a
//       testnet node to that address ({event:'poked'}); 1 = PEER_HOLEPUNCH, which stops the
//       `hyperswarm` crate's swarm (it has todo!() there).
//   "exit" (or end of stdin)                        tears everything down.
// A 600 s safety timeout tears everything down too.
const createTestnet = require('@hyperswarm/testnet')
const Hyperswarm = require('hyperswarm')
const Hypercore = require('hypercore')
const Hyperbee = require('hyperbee-2')
const { unpack } = require('msgpackr')
const os = require('os')
const fs = require('fs')
const path = require('path')

const [, , portArg] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const ATTEMPT_MS = 20_000

async function main () {
  const testnet = await createTestnet(3, { host: '127.0.0.1', port: Number(portArg || 0) })
  const bs = testnet.bootstrap[0]
  out({ event: 'testnet', bootstrap: `${bs.host}:${bs.port}` })
  const dirs = []
  process.on('exit', () => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })
  const teardown = async () => {
    setTimeout(() => process.exit(0), 1000).unref()
    await testnet.destroy().catch(() => {})
    process.exit(0)
  }
  setTimeout(teardown, 600_000).unref()

  const attempt = async (key, length, mode, n) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitra-swarm-reader-'))
    dirs.push(dir)
    const core = new Hypercore(dir, key, { compat: true })
    await core.ready()
    const swarm = new Hyperswarm({ bootstrap: testnet.bootstrap })
    swarm.on('connection', (socket) => {
      socket.on('error', () => {})
      core.replicate(socket)
    })
    try {
      await swarm.join(core.discoveryKey, { server: mode === 'both', client: true }).flushed()
      out({ event: 'joined', n })
      const deadline = Date.now() + ATTEMPT_MS
      while (core.length < length) {
        if (Date.now() > deadline) return { core: null, outcome: `length ${core.length} of ${length} after ${ATTEMPT_MS} ms, ${swarm.connections.size} connections` }
        await Promise.race([core.update({ wait: true }), new Promise((resolve) => setTimeout(resolve, 500))])
      }
      return { core, swarm, outcome: 'ok' }
    } catch (err) {
      return { core: null, outcome: String(err && err.message) }
    } finally {
      if (core.length < length) {
        await swarm.destroy().catch(() => {})
        await core.close().catch(() => {})
      }
    }
  }

  const read = async (keyHex, length, paths, mode, attempts) => {
    const key = Buffer.from(keyHex, 'hex')
    for (let n = 1; n <= attempts; n++) {
      const got = await attempt(key, length, mode, n)
      if (!got.core) {
        out({ event: 'attempt', n, outcome: got.outcome })
        continue
      }
      const bee = new Hyperbee(got.core, { extension: false })
      await bee.ready()
      const values = {}
      for (const p of paths) {
        const entry = await bee.get(Buffer.from(p.split('/').filter(Boolean).join('\x00')))
        values[p] = entry ? unpack(entry.value) : null
      }
      out({ event: 'read', length: got.core.length, attempts: n, values })
      await got.swarm.destroy().catch(() => {})
      await got.core.close().catch(() => {})
      return
    }
    out({ event: 'failed', attempts })
  }

  let buffered = ''
  process.stdin.on('data', (d) => {
    buffered += String(d)
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      const words = line.split(/\s+/)
      if (words[0] === 'exit') teardown()
      else if (words[0] === 'poke') {
        const [host, port] = words[1].split(':')
        testnet.nodes[1]
          .request({ token: null, command: Number(words[2]), target: Buffer.alloc(32), value: null }, { host, port: Number(port) }, { retry: false })
          .then((res) => out({ event: 'poked', error: res.error }), (err) => out({ event: 'poked', failed: String(err.code || err.message) }))
      }
      else if (words[0] === 'read') {
        read(words[1], Number(words[2]), words[3].split(','), words[4], Number(words[5] || 5)).catch((err) => {
          out({ event: 'fatal', message: String((err && err.stack) || err) })
        })
      }
    }
  })
  process.stdin.on('end', teardown)
}

main().catch((err) => {
  out({ event: 'fatal', message: String((err && err.stack) || err) })
  process.exit(1)
})
