// A JS Hypercore (11.39.5 compat core, or 10.38.2) replicating one core with a Rust peer over
// TCP + @hyperswarm/secret-stream, for tests/replicate_*.rs and benches/replicate.rs.
// usage: node replicate_peer.js <11|10-38> <writer|reader> <initiator|responder|listen> <port> <count|key> [secret key]
//   initiator/responder: dial 127.0.0.1:<port> with that secret-stream role; listen: accept one
//   peer on 127.0.0.1:<port> (0 = any; the "ready" event carries "port").
//   writer: creates a core with <count> blocks (block i = replicate_block(i), 100 bytes),
//           prints {"event":"ready","key":...} and replicates. With [secret key] (64 bytes hex,
//           libsodium layout: seed then public key) the core uses that key pair (a second
//           history under a key that already signed one: a split log).
//   reader: opens a replica of <key>, runs core.download() (JS default, parallel), replicates.
// stdin commands (one per line):
//   append            append the next block, prints {"event":"appended","length"}
//   truncate N        truncate to N (a new fork), prints {"event":"truncated","length","fork"}
//   wait N            once length >= N and blocks 0..N are local, prints
//                     {"event":"have","length","fork","sha256","ms"} (sha256 of blocks 0..N
//                     concatenated; ms from dialing until blocks 0..N were local)
// Events: "ready", "connect", "error", "close", "have", "fatal", "timeout".
const net = require('net')
const crypto = require('crypto')
const readline = require('readline')
const { out, hex, openCore, replicateOver, runMain } = require('./lib/peer')

const [, , version, mode, role, port, arg, secret] = process.argv
const block = (i) => Buffer.from(('block-' + i + '-').padEnd(100, '.'))

function open (key) {
  const secretKey = secret ? Buffer.from(secret, 'hex') : null
  const keyPair = secretKey ? { publicKey: secretKey.subarray(32), secretKey } : undefined
  return openCore(version, key, 'vitra-repl-', key ? {} : { keyPair })
}

async function main () {
  let core
  let next = 0
  if (mode === 'writer') {
    core = open(null)
    await core.ready()
    const count = Number(arg)
    const batch = []
    for (; next < count; next++) {
      batch.push(block(next))
      if (batch.length === 1000) await core.append(batch.splice(0))
    }
    if (batch.length) await core.append(batch)
  } else {
    core = open(Buffer.from(arg, 'hex'))
    await core.ready()
  }
  let connectStart = process.hrtime.bigint()
  const attach = (socket, isInitiator) => replicateOver(socket, isInitiator, [core])
  if (role === 'listen') {
    // We listen on 127.0.0.1:<port> (0 = any free port) and the Rust side dials us.
    const server = net.createServer((socket) => {
      connectStart = process.hrtime.bigint()
      attach(socket, false)
    })
    await new Promise((resolve) => server.listen(Number(port), '127.0.0.1', resolve))
    out({ event: 'ready', key: hex(core.key), length: core.length, port: server.address().port })
  } else {
    out({ event: 'ready', key: hex(core.key), length: core.length })
    connectStart = process.hrtime.bigint()
    attach(net.connect(Number(port), '127.0.0.1'), role === 'initiator')
  }
  if (mode === 'reader') core.download()

  let chain = Promise.resolve()
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    chain = chain.then(() => command(core, line.trim().split(' '))).catch((err) => out({ event: 'fatal', message: err.stack }))
  })
  rl.on('close', () => process.exit(0))

  async function command (core, [cmd, n]) {
    if (cmd === 'append') {
      if (next < core.length) next = core.length
      await core.append(block(next++))
      out({ event: 'appended', length: core.length })
    } else if (cmd === 'truncate') {
      await core.truncate(Number(n))
      next = Number(n)
      out({ event: 'truncated', length: core.length, fork: core.fork })
    } else if (cmd === 'wait') {
      const want = Number(n)
      while (core.length < want) await new Promise((resolve) => core.once('append', resolve))
      await core.download({ start: 0, end: want }).done()
      const ms = Number(process.hrtime.bigint() - connectStart) / 1e6
      const hash = crypto.createHash('sha256')
      for (let i = 0; i < want; i++) hash.update(await core.get(i))
      out({ event: 'have', length: core.length, fork: core.fork, sha256: hash.digest('hex'), ms })
    }
  }
}

runMain(main, Number(process.env.REPLICATE_PEER_TIMEOUT_MS || 120000))
