// JS Hyperbee (1.10.1 on Hypercore 10.38, 2.8.0 on 11) reading a Vitra database index served by a Rust listener: a JS Hypercore
// (11.39.5 compat core, or 10.38.2) replica of the index is replicated over TCP +
// @hyperswarm/secret-stream (JS dials, as initiator), then Hyperbee lists every entry.
// usage: node replicate_bee_reader.js <11|10-38> <port> <index key hex> <length>
// Prints {"event":"entries","length","entries":[{seq,key,value}]} (key/value hex) once the
// replica reached <length>, or "fatal"/"timeout".
const net = require('net')
const { out, hex, openCore, replicateOver, runMain } = require('./lib/peer')
// Hyperbee 1.10.1 wraps any core without Symbol.for('hypercore.promises') (Hypercore 11 has
// none) as a callback core and never becomes ready on it, so Hypercore 11 is read with
// Hyperbee 2.8.0 (hyperbee-2) and 10.38 with Hyperbee 1.10.1.

const [, , version, port, keyHex, lengthArg] = process.argv

async function main () {
  const key = Buffer.from(keyHex, 'hex')
  const core = openCore(version, key, 'vitra-bee-')
  await core.ready()
  const s = replicateOver(net.connect(Number(port), '127.0.0.1'), true, [core])
  const want = Number(lengthArg)
  if (process.env.REPL_DEBUG) setInterval(() => console.error('length', core.length, 'want', want, JSON.stringify(core.replicator.stats), 'peers', core.peers.map((p) => [p.remoteLength, p.remoteFork, p.remoteCanUpgrade, p.lengthAcked, p.remoteSynced])), 1000).unref()
  while (core.length < want) await core.update({ wait: true })
  const Hyperbee = version === '11' ? require('hyperbee-2') : require('hyperbee')
  const bee = new Hyperbee(core, { extension: false })
  if (process.env.REPL_DEBUG) console.error('bee opening')
  await bee.ready()
  if (process.env.REPL_DEBUG) console.error('bee ready', bee.version)
  const entries = []
  for await (const e of bee.createReadStream()) entries.push({ seq: e.seq, key: hex(e.key), value: hex(e.value) })
  out({ event: 'entries', length: core.length, entries })
  s.destroy()
  setTimeout(() => process.exit(0), 50)
}

runMain(main, 60000)
