// A JS protomux 3.12 peer (over @hyperswarm/secret-stream) for tests/js_protomux.rs.
// usage: node protomux_peer.js <initiator|responder> <port>
// On connect it opens channel "vitra-test" id "from-js" (handshake c.string "js-hello") and
// channel "js-unwanted"; it answers any "vitra-test" channel the Rust side opens (handshake
// "js-accepts") and rejects every other protocol. Channel messages: type 0 c.string (echoed
// back as "echo:" + text, "bye" destroys the connection), type 1 c.raw (echoed back as is).
// Right after opening "from-js" it sends "early"; once that channel is open it sends "batched-1" and "batched-2" corked into one batch.
// Prints JSON lines: open / message / raw / close events.
const net = require('net')
const crypto = require('crypto')
const c = require('compact-encoding')
const Protomux = require('protomux')
const SecretStream = require('@hyperswarm/secret-stream')

const [, , role, port] = process.argv
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const str = (b) => (b ? Buffer.from(b).toString() : null)

const socket = net.connect(Number(port), '127.0.0.1')
const s = new SecretStream(role === 'initiator', socket)
const mux = Protomux.from(s)

function makeChannel(protocol, id, hello, onopen) {
  const ch = mux.createChannel({
    protocol,
    id,
    handshake: c.string,
    messages: [
      {
        encoding: c.string,
        onmessage(text) {
          out({ event: 'message', protocol, id: str(id), text })
          if (text === 'bye') s.destroy()
          else if (!text.startsWith('echo:')) ch.messages[0].send('echo:' + text)
        }
      },
      {
        encoding: c.raw,
        onmessage(bytes) {
          const sha256 = crypto.createHash('sha256').update(bytes).digest('hex')
          out({ event: 'raw', protocol, id: str(id), length: bytes.length, sha256 })
          ch.messages[1].send(bytes)
        }
      }
    ],
    onopen(handshake) {
      out({ event: 'open', protocol, id: str(id), handshake })
      if (onopen) onopen(ch)
    },
    onclose(isRemote) {
      out({ event: 'close', protocol, id: str(id), isRemote })
    }
  })
  if (ch === null) {
    out({ event: 'duplicate', protocol, id: str(id) })
    return null
  }
  ch.open(hello)
  // Sent before the Rust side has answered the open: it must be buffered, not lost.
  if (hello === 'js-hello') ch.messages[0].send('early')
  return ch
}

mux.pair({ protocol: 'vitra-test' }, (id) => {
  makeChannel('vitra-test', id, 'js-accepts')
})

s.on('connect', () => {
  out({ event: 'connect', handshakeHash: Buffer.from(s.handshakeHash).toString('hex') })
  makeChannel('vitra-test', Buffer.from('from-js'), 'js-hello', (ch) => {
    mux.cork()
    ch.messages[0].send('batched-1')
    ch.messages[0].send('batched-2')
    mux.uncork()
  })
  makeChannel('js-unwanted', null, 'nobody wants me')
})
s.on('error', (err) => out({ event: 'error', message: err.message }))
s.on('close', () => {
  out({ event: 'stream-close' })
  setTimeout(() => process.exit(0), 20)
})
setTimeout(() => {
  out({ event: 'timeout' })
  process.exit(3)
}, 20000).unref()
