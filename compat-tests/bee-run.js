// Runs a JSON op script through JS Hyperbee 1.10.1 on JS Hypercore 10.31.9 (random-access-memory)
// and prints every block of the resulting log as hex.
//
// Usage: node bee-run.js <script.json>   (or the script on stdin)
// Script: {"ops": [op...]} where op is
//   {"type": "put", "key": hex, "value": hex | null}
//   {"type": "del", "key": hex}
//   {"type": "batch", "ops": [put/del op...]}
// Output (stdout): {"blocks": [hex, ...]}
// Several scripts at once: {"scripts": [script...]} -> {"results": [{"blocks": [...]}, ...]}
const fs = require('fs')
const Hypercore = require('hypercore-10-31')
const Hyperbee = require('hyperbee')
const RAM = require('random-access-memory')

async function main () {
  const src = process.argv[2] ? fs.readFileSync(process.argv[2], 'utf8') : fs.readFileSync(0, 'utf8')
  const input = JSON.parse(src)
  if (Array.isArray(input.scripts)) {
    const results = []
    for (const script of input.scripts) results.push(await run(script))
    process.stdout.write(JSON.stringify({ results }) + '\n')
  } else {
    process.stdout.write(JSON.stringify(await run(input)) + '\n')
  }
}

async function run (script) {
  const core = new Hypercore(RAM)
  await core.ready()
  const bee = new Hyperbee(core)
  await bee.ready()
  const val = (v) => (v === null || v === undefined) ? null : Buffer.from(v, 'hex')
  for (const op of script.ops) {
    if (op.type === 'put') await bee.put(Buffer.from(op.key, 'hex'), val(op.value))
    else if (op.type === 'del') await bee.del(Buffer.from(op.key, 'hex'))
    else if (op.type === 'batch') {
      const b = bee.batch()
      for (const o of op.ops) {
        if (o.type === 'put') await b.put(Buffer.from(o.key, 'hex'), val(o.value))
        else if (o.type === 'del') await b.del(Buffer.from(o.key, 'hex'))
        else throw new Error('bad batch op ' + o.type)
      }
      await b.flush()
    } else throw new Error('bad op ' + op.type)
  }
  const blocks = []
  for (let i = 0; i < core.length; i++) blocks.push((await core.get(i)).toString('hex'))
  await core.close()
  return { blocks }
}

let finished = false
process.on('beforeExit', () => {
  if (finished) return
  process.stderr.write('bee-run.js: JS Hyperbee stopped without finishing (it awaits a block that will never come)\n')
  process.exit(2)
})

main().then(() => { finished = true }, (err) => {
  process.stderr.write('bee-run.js failed: ' + (err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
