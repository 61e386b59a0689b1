// JS anchor for benches/net_secret_stream.rs: @hyperswarm/secret-stream to itself over
// loopback TCP, 64 KiB x 2048 and 128 B x 200000 messages.
const net = require('net')
const SecretStream = require('@hyperswarm/secret-stream')

function pair() {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      const b = new SecretStream(false, socket)
      resolve({ a, b, server })
    })
    let a = null
    server.listen(0, '127.0.0.1', () => {
      a = new SecretStream(true, net.connect(server.address().port, '127.0.0.1'))
    })
  })
}

async function run(size, count) {
  const { a, b, server } = await pair()
  await Promise.all([a.opened, b.opened])
  const msg = Buffer.alloc(size, 7)
  const start = process.hrtime.bigint()
  let got = 0
  let bytes = 0
  const done = new Promise((resolve) => {
    b.on('data', (m) => {
      bytes += m.length
      if (++got === count) resolve()
    })
  })
  for (let i = 0; i < count; i++) {
    if (!a.write(msg)) await new Promise((resolve) => a.once('drain', resolve))
  }
  await done
  const secs = Number(process.hrtime.bigint() - start) / 1e9
  a.destroy()
  b.destroy()
  server.close()
  return { mbps: bytes / secs / 1e6, mps: count / secs }
}

async function main() {
  const big = await run(64 * 1024, 2048)
  console.log(`JS secret stream, 64 KiB messages x 2048: ${big.mbps.toFixed(0)} MB/s`)
  const small = await run(128, 200000)
  console.log(`JS secret stream, 128 B messages x 200000: ${small.mps.toFixed(0)} messages/s`)
}

main()
