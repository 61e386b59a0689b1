// JS side of the proof compatibility tests (tests/js_hypercore_proofs.rs).
// usage:
//   node proof-compat.js <10-31|10-38> prove <dir> <request-hex>...
//        open the core at dir, answer each wire.request, print one wire.data hex per line
//   node proof-compat.js <10-31|10-38> verify <key-hex> <data-hex>...
//        apply each wire.data to an in-memory replica, print its state as JSON
'use strict'
const versions = { '10-31': 'hypercore-10-31', '10-38': 'hypercore-10-38' }
const [version, cmd, target, ...rest] = process.argv.slice(2)
if (!versions[version]) fail(`unknown version ${version}`)
const Hypercore = require(versions[version])
const m = require(`${versions[version]}/lib/messages`)
const c = require('compact-encoding')
const RAM = require('random-access-memory')

function fail (msg) {
  process.stderr.write(String(msg) + '\n')
  process.exit(2)
}

async function prove (dir, requests) {
  const core = new Hypercore(dir, { createIfMissing: false })
  await core.ready()
  for (const hex of requests) {
    const req = c.decode(m.wire.request, Buffer.from(hex, 'hex'))
    const proof = await core.core.tree.proof(req)
    if (proof.block) proof.block.value = await core.get(req.block.index, { wait: false })
    const out = c.encode(m.wire.data, { request: req.id, ...proof })
    process.stdout.write(out.toString('hex') + '\n')
  }
  await core.close()
}

async function verify (keyHex, proofs) {
  const core = new Hypercore(RAM, Buffer.from(keyHex, 'hex'))
  await core.ready()
  const results = []
  for (const hex of proofs) {
    const proof = c.decode(m.wire.data, Buffer.from(hex, 'hex'))
    try {
      results.push(await core.core.verify(proof))
    } catch (err) {
      results.push(String(err.message || err))
    }
  }
  const blocks = []
  for (let i = 0; i < core.length; i++) {
    const b = await core.get(i, { wait: false })
    blocks.push(b === null ? null : b.toString('hex'))
  }
  const out = {
    results,
    length: core.length,
    fork: core.fork,
    treeHash: core.core.tree.hash().toString('hex'),
    blocks
  }
  await core.close()
  process.stdout.write(JSON.stringify(out) + '\n')
}

const job = cmd === 'prove' ? prove(target, rest) : cmd === 'verify' ? verify(target, rest) : fail(`unknown command ${cmd}`)
job.catch(err => fail(err && err.stack ? err.stack : err))
