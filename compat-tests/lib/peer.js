// Shared pieces of the JS peers the Rust tests drive (hypercore_peer.js, replicate_peer.js,
// replicate_bee_reader.js, serve_vitra_database.js): JSON-lines output, a Hypercore of either
// pinned version, a secret stream replicating cores over a TCP socket, and the bounded `main`.
const os = require('os')
const fs = require('fs')
const path = require('path')
const SecretStream = require('@hyperswarm/secret-stream')

// Prints one JSON event line on stdout (what the Rust side reads).
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

// Lowercase hex of a buffer; null for null/undefined.
const hex = (b) => (b === null || b === undefined) ? null : Buffer.from(b).toString('hex')

// A fresh temporary directory named `<prefix>...`, removed when the process exits.
function tempDir (prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

// A Hypercore of `version` ("11": 11.39.5 compat core in a temporary directory with the prefix
// `tmpPrefix`; "10-38": 10.38.2 in memory): a replica of `key`, or with `key` null a writable
// core (with `opts`, e.g. a keyPair).
function openCore (version, key, tmpPrefix, opts = {}) {
  if (version === '11') {
    const Hypercore = require('hypercore')
    const dir = tempDir(tmpPrefix)
    return key ? new Hypercore(dir, key, { compat: true, ...opts }) : new Hypercore(dir, { compat: true, ...opts })
  }
  if (version === '10-38') {
    const Hypercore = require('hypercore-10-38')
    const RAM = require('random-access-memory')
    return key ? new Hypercore(RAM, key, opts) : new Hypercore(RAM, opts)
  }
  throw new Error('unknown version ' + version)
}

// A secret stream over `socket` (no Nagle delay) replicating every core in `cores`, printing
// "connect", "error" and "close" events.
function replicateOver (socket, isInitiator, cores) {
  socket.setNoDelay(true)
  const s = new SecretStream(isInitiator, socket)
  for (const core of cores) core.replicate(s)
  s.on('connect', () => out({ event: 'connect' }))
  s.on('error', (err) => out({ event: 'error', message: err.message }))
  s.on('close', () => out({ event: 'close' }))
  return s
}

// Runs `main`, printing "fatal" (exit 2) when it throws and "timeout" (exit 3) after
// `timeoutMs` if the process is still running then.
function runMain (main, timeoutMs) {
  main().catch((err) => {
    out({ event: 'fatal', message: err.stack })
    process.exit(2)
  })
  setTimeout(() => {
    out({ event: 'timeout' })
    process.exit(3)
  }, timeoutMs).unref()
}

module.exports = { out, hex, tempDir, openCore, replicateOver, runMain }
