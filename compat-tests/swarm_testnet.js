// A local HyperDHT testnet (@hyperswarm/testnet, 127.0.0.1 only) for tests that drive the `vitra`
// binary with --swarm --bootstrap (a JS peer reading from it: swarm_index_reader.js, run as a
// process of its own; in this process, next to the testnet, its connections to vitra failed).
// usage: node swarm_testnet.js [bootstrap-port]
// Prints JSON lines on stdout: {event:'testnet', bootstrap:'127.0.0.1:PORT'} once it is up.
// stdin commands, one a line:
//   "poke HOST:PORT N"  one raw DHT request with command N from a testnet node to that address
//       ({event:'poked'}); 1 = PEER_HOLEPUNCH, which stops the `hyperswarm` crate's swarm (it has
//       todo!() there).
//   "exit" (or end of stdin)  tears everything down.
// A 600 s safety timeout tears everything down too.
const createTestnet = require('@hyperswarm/testnet')
const [, , portArg] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

async function main () {
  const testnet = await createTestnet(3, { host: '127.0.0.1', port: Number(portArg || 0) })
  const bs = testnet.bootstrap[0]
  out({ event: 'testnet', bootstrap: `${bs.host}:${bs.port}` })
  const teardown = async () => {
    setTimeout(() => process.exit(0), 1000).unref()
    await testnet.destroy().catch(() => {})
    process.exit(0)
  }
  setTimeout(teardown, 600_000).unref()

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
    }
  })
  process.stdin.on('end', teardown)
}

main().catch((err) => {
  out({ event: 'fatal', message: String((err && err.stack) || err) })
  process.exit(1)
})
