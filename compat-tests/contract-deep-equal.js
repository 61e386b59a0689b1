// Oracle for the contract `assert` module: reads a JSON array of [exprA, exprB] JS source
// pairs on stdin and prints, as JSON, whether Node's strict assert.deepStrictEqual accepts
// each pair and the message of assert.strict.equal for it (what JS Vitra's strict assert
// semantics give). Used by tests/contract_assert_matches_node.rs.
'use strict'
const assert = require('assert').strict

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d) => { input += d })
process.stdin.on('end', () => {
  const pairs = JSON.parse(input)
  const out = pairs.map(([a, b]) => {
    // The pairs are test data written by the Rust test itself, evaluated as expressions.
    const va = (0, eval)('(' + a + ')')
    const vb = (0, eval)('(' + b + ')')
    let deep = true
    try { assert.deepStrictEqual(va, vb) } catch (e) { deep = false }
    return deep
  })
  process.stdout.write(JSON.stringify(out))
})
