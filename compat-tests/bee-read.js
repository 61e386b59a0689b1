// Appends the given blocks to a fresh JS Hypercore 10.31.9 (random-access-memory), opens JS
// Hyperbee 1.10.1 on it and runs read queries, printing the results as JSON.
//
// Input (stdin or file): {"blocks": [hex...], "queries": [query...]}, where query is
//   {"type": "get", "key": hex, "checkout": n?}
//   {"type": "range", "opts": {"gt"|"gte"|"lt"|"lte": hex, "reverse": bool, "limit": n}, "checkout": n?}
//   {"type": "history", "opts": {"gt"|"gte"|"lt"|"lte": n, "reverse": bool, "limit": n}, "checkout": n?}
// Output: {"results": [...]}: get -> {seq, key, value} | null; range -> [{seq, key, value}];
// history -> [{type, seq, key, value}] (keys and values as hex, missing values as null).
const fs = require('fs')
const Hypercore = require('hypercore-10-31')
const Hyperbee = require('hyperbee')
const RAM = require('random-access-memory')

const hex = (b) => (b === null || b === undefined) ? null : b.toString('hex')
const node = (n) => n && { seq: n.seq, key: hex(n.key), value: hex(n.value) }

async function collect (stream) {
  const out = []
  for await (const x of stream) out.push(x)
  return out
}

async function main () {
  const src = process.argv[2] ? fs.readFileSync(process.argv[2], 'utf8') : fs.readFileSync(0, 'utf8')
  const input = JSON.parse(src)
  const core = new Hypercore(RAM)
  await core.ready()
  await core.append(input.blocks.map((h) => Buffer.from(h, 'hex')))
  const bee = new Hyperbee(core, { extension: false })
  await bee.ready()
  const results = []
  for (const q of input.queries) {
    const db = typeof q.checkout === 'number' ? bee.checkout(q.checkout) : bee
    const opts = { ...(q.opts || {}) }
    if (q.type === 'get') {
      results.push(node(await db.get(Buffer.from(q.key, 'hex'))))
    } else if (q.type === 'range') {
      for (const k of ['gt', 'gte', 'lt', 'lte']) if (typeof opts[k] === 'string') opts[k] = Buffer.from(opts[k], 'hex')
      results.push((await collect(db.createReadStream(opts))).map(node))
    } else if (q.type === 'history') {
      results.push((await collect(db.createHistoryStream(opts))).map((e) => ({ type: e.type, ...node(e) })))
    } else throw new Error('bad query ' + q.type)
  }
  process.stdout.write(JSON.stringify({ results }) + '\n')
  await core.close()
}

let finished = false
process.on('beforeExit', () => {
  if (finished) return
  process.stderr.write('bee-read.js: JS Hyperbee stopped without finishing (it awaits a block that will never come)\n')
  process.exit(2)
})

main().then(() => { finished = true }, (err) => {
  process.stderr.write('bee-read.js failed: ' + (err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
