// A JS @hyperswarm/secret-stream peer for tests/js_secret_stream.rs.
// usage: node secret_stream_peer.js <initiator|responder> <port> <mode>
// modes:
//   echo    send "hello from js" and a 1,000,000-byte message; echo every message back as
//           "echo:" + message; on receiving "end" end the stream; when the Rust side ends, end too.
//   vanish  send "going away" and destroy the TCP socket abruptly.
//   stall   complete the handshake, then stay silent until the Rust side goes.
//   garbage after the handshake, write a frame of random bytes straight onto the socket.
// Prints one JSON line {"event":"connect",...} with keys, then {"event":...} lines.
const net = require('net')
const SecretStream = require('@hyperswarm/secret-stream')

const [, , role, port, mode] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)

const socket = net.connect(Number(port), '127.0.0.1')
const keyPair = SecretStream.keyPair(Buffer.alloc(32, 0x42))
const s = new SecretStream(role === 'initiator', socket, { keyPair })

function big() {
  const b = Buffer.alloc(1000000)
  for (let i = 0; i < b.length; i++) b[i] = i % 251
  return b
}

s.on('connect', () => {
  out({
    event: 'connect',
    publicKey: hex(s.publicKey),
    remotePublicKey: hex(s.remotePublicKey),
    handshakeHash: hex(s.handshakeHash)
  })
  if (mode === 'echo') {
    s.write(Buffer.from('hello from js'))
    s.write(big())
  } else if (mode === 'vanish') {
    s.write(Buffer.from('going away'))
    setTimeout(() => socket.destroy(), 50)
  } else if (mode === 'garbage') {
    const junk = Buffer.alloc(40)
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 37 + 11) & 255
    const frame = Buffer.alloc(3 + junk.length)
    frame[0] = junk.length
    junk.copy(frame, 3)
    socket.write(frame)
  }
})

s.on('data', (msg) => {
  if (mode !== 'echo') return
  if (msg.toString() === 'end') {
    out({ event: 'ending' })
    s.end()
    return
  }
  s.write(Buffer.concat([Buffer.from('echo:'), msg]))
})

s.on('end', () => {
  out({ event: 'end' })
  s.end()
})
s.on('error', (err) => out({ event: 'error', message: err.message }))
s.on('close', () => {
  out({ event: 'close' })
  setTimeout(() => process.exit(0), 20)
})
setTimeout(() => {
  out({ event: 'timeout' })
  process.exit(3)
}, 20000).unref()
