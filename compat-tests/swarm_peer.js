// A local HyperDHT testnet (127.0.0.1 only) and a JS Hyperswarm 4.17 peer, for tests/swarm_*.rs.
// usage: node swarm_peer.js <server|client|both|core|testnet-only> <topic-hex> [bootstrap-port] [nodes]
// Mode "core" does what JS Vitra does: a JS Hypercore 11 compat core (3 blocks "core-block-N")
// joins its own discovery key (server and client; the topic argument is ignored) and
// replicates on every connection; it prints {event:'core', key, discoveryKey, length} first.
// Prints JSON lines on stdout:
//   {event:'testnet', bootstrap:'127.0.0.1:PORT'}     the testnet is up (first line)
//   {event:'joined', publicKey}                        the JS peer joined and flushed the topic
//   {event:'connection', remotePublicKey, localPublicKey, initiator}   Hyperswarm gave a JS peer a connection
//   {event:'open', remotePublicKey, handshake}         the "vitra-swarm-test" protomux channel opened
//   {event:'message', remotePublicKey, text}           a message arrived on it
//   {event:'close', remotePublicKey}                   the connection ended
// On each connection the JS peer opens protomux channel "vitra-swarm-test" (handshake c.string
// "js-hello") and answers every message `text` with "echo:" + text, and sends "from-js" once open.
// stdin commands, one a line: "join" joins the topic (so the Rust side can announce first),
// "join-another" joins it with one more JS swarm (a new key pair; its 'joined' and connection
// events carry its own key as localPublicKey), e.g. to dial the Rust side a second time,
// "poke HOST:PORT N" sends one DHT request with command N to that node ({event:'poked'}),
// "exit" (or end of stdin) tears everything down; a 60 s safety timeout does too.
const createTestnet = require('@hyperswarm/testnet')
const Hyperswarm = require('hyperswarm')
const Protomux = require('protomux')
const c = require('compact-encoding')

const [, , mode, topicHex, portArg, nodesArg] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => Buffer.from(b).toString('hex')

async function main() {
  const testnet = await createTestnet(Number(nodesArg || 3), { host: '127.0.0.1', port: Number(portArg || 0) })
  const bs = testnet.bootstrap[0]
  out({ event: 'testnet', bootstrap: `${bs.host}:${bs.port}` })

  let swarm = null
  const others = []
  const teardown = async () => {
    // Closing waits for open connections to end; do not let that hold the test up.
    setTimeout(() => process.exit(0), 1000).unref()
    for (const other of others) await other.destroy().catch(() => {})
    if (swarm) await swarm.destroy().catch(() => {})
    await testnet.destroy().catch(() => {})
    process.exit(0)
  }
  setTimeout(teardown, 60_000).unref()
  let joining = null
  process.stdin.on('data', (d) => {
    const text = String(d)
    const poke = text.match(/poke (\S+):(\d+) (\d+)/)
    if (poke) {
      // One raw DHT request (command number poke[3]) from a testnet node to that address, as
      // any DHT node may send: e.g. 1 = PEER_HOLEPUNCH, which JS peers send to holepunch.
      const [, host, port, command] = poke
      testnet.nodes[1]
        .request(
          { token: null, command: Number(command), target: Buffer.alloc(32), value: null },
          { host, port: Number(port) },
          { retry: false }
        )
        .then(
          (res) => out({ event: 'poked', error: res.error }),
          (err) => out({ event: 'poked', failed: String(err.code || err.message) })
        )
    }
    if (text.includes('exit')) teardown()
    else if (text.includes('join-another')) {
      join(true).catch((err) => {
        out({ event: 'fatal', message: String((err && err.stack) || err) })
        process.exit(1)
      })
    } else if (text.includes('join') && !joining && mode !== 'testnet-only') {
      joining = join().catch((err) => {
        out({ event: 'fatal', message: String((err && err.stack) || err) })
        process.exit(1)
      })
    }
  })
  process.stdin.on('end', teardown)

  const join = async (another = false) => {
    let core = null
    if (mode === 'core' && !another) {
      const Hypercore = require('hypercore')
      const os = require('os')
      const fs = require('fs')
      const path = require('path')
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitra-swarm-'))
      process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
      core = new Hypercore(dir, { compat: true })
      await core.ready()
      for (let i = 0; i < 3; i++) await core.append(Buffer.from(`core-block-${i}`))
      core.on('upload', (index) => out({ event: 'upload', index }))
      out({ event: 'core', key: hex(core.key), discoveryKey: hex(core.discoveryKey), length: core.length })
    }
    const joined = new Hyperswarm({ bootstrap: testnet.bootstrap })
    if (another) others.push(joined)
    else swarm = joined
    const localPublicKey = hex(joined.keyPair.publicKey)
    joined.on('connection', (socket, info) => {
      const remotePublicKey = hex(info.publicKey)
      out({ event: 'connection', remotePublicKey, localPublicKey, initiator: socket.isInitiator })
      socket.on('error', (err) => out({ event: 'error', remotePublicKey, message: err.message }))
      socket.on('close', () => out({ event: 'close', remotePublicKey }))
      if (core) {
        core.replicate(socket)
        return
      }
      const mux = Protomux.from(socket)
      const ch = mux.createChannel({
        protocol: 'vitra-swarm-test',
        handshake: c.string,
        messages: [
          {
            encoding: c.string,
            onmessage(text) {
              out({ event: 'message', remotePublicKey, text })
              if (!text.startsWith('echo:')) ch.messages[0].send('echo:' + text)
            }
          }
        ],
        onopen(handshake) {
          out({ event: 'open', remotePublicKey, handshake })
          ch.messages[0].send('from-js')
        }
      })
      if (ch) ch.open('js-hello')
    })
    const topic = core ? core.discoveryKey : Buffer.from(topicHex, 'hex')
    const discovery = joined.join(topic, { server: mode !== 'client', client: mode !== 'server' })
    await discovery.flushed()
    out({ event: 'joined', publicKey: localPublicKey })
  }
}

main().catch((err) => {
  out({ event: 'fatal', message: String((err && err.stack) || err) })
  process.exit(1)
})
