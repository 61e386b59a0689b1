// JS side of the log compatibility tests (tests/js_hypercore_compat.rs).
// usage:
//   node log-compat.js <10-31|10-38> write <dir> <spec-json>   create a core, run ops, print state
//   node log-compat.js <10-31|10-38> read <dir>                open a core, print state
//   node log-compat.js <10-31|10-38> append <dir> <spec-json>  open a core, run ops, print state
// spec: {"ops": [["append", ["hex", ...]], ["truncate", n], ...]}
// state: {key, discoveryKey, length, fork, byteLength, writable, treeHash, signatureValid, blocks}
'use strict'
const versions = { '10-31': 'hypercore-10-31', '10-38': 'hypercore-10-38' }
const [version, cmd, dir, specJson] = process.argv.slice(2)
if (!versions[version]) fail(`unknown version ${version}`)
const Hypercore = require(versions[version])
const caps = require(`${versions[version]}/lib/caps`)
const crypto = require('hypercore-crypto')

function fail (msg) {
  process.stderr.write(String(msg) + '\n')
  process.exit(2)
}

async function state (core) {
  const blocks = []
  for (let i = 0; i < core.length; i++) {
    const b = await core.get(i, { wait: false })
    blocks.push(b === null ? null : b.toString('hex'))
  }
  const tree = core.core.tree
  const hash = tree.hash()
  const sig = tree.signature
  const signatureValid = core.length === 0
    ? null
    : !!sig && crypto.verify(caps.treeSignableCompat(hash, tree.length, tree.fork, false), sig, core.key)
  return {
    key: core.key.toString('hex'),
    discoveryKey: core.discoveryKey.toString('hex'),
    length: core.length,
    fork: core.fork,
    byteLength: core.byteLength,
    writable: core.writable,
    treeHash: hash.toString('hex'),
    signatureValid,
    blocks
  }
}

async function runOps (core, spec) {
  for (const [op, arg] of spec.ops || []) {
    if (op === 'append') await core.append(arg.map(h => Buffer.from(h, 'hex')))
    else if (op === 'truncate') await core.truncate(arg)
    else fail(`unknown op ${op}`)
  }
}

async function main () {
  const spec = specJson ? JSON.parse(specJson) : {}
  const core = new Hypercore(dir, cmd === 'write' ? {} : { createIfMissing: false })
  await core.ready()
  if (cmd === 'write' || cmd === 'append') await runOps(core, spec)
  else if (cmd !== 'read') fail(`unknown command ${cmd}`)
  const out = await state(core)
  await core.close()
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch(err => fail(err && err.stack ? err.stack : err))
