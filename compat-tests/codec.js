// Reference side of the codec compatibility tests: msgpackr 1.5.2 and Node's localeCompare.
//
// usage:
//   node codec.js pack FILE          FILE: {"values": [tagged json...]} -> [hex...]
//   node codec.js unpack FILE        FILE: {"hex": [hex...]}            -> [tagged json...]
//   node codec.js generate N SEED    -> [{"hex": ..., "json": tagged json}] of N random values
//   node codec.js sort FILE          FILE: {"strings": [...]}           -> indices in localeCompare order
//
// "tagged json" is vitra's JSON convention: {"$undefined": true}, {"$buffer": hex},
// {"$date": ms}, {"$number": "NaN" | "Infinity" | "-Infinity" | "-0"}.
'use strict'
const fs = require('fs')
const { pack, unpack } = require('msgpackr')

function fromTagged (j) {
  if (Array.isArray(j)) return j.map(fromTagged)
  if (j !== null && typeof j === 'object') {
    const keys = Object.keys(j)
    if (keys.length === 1) {
      const k = keys[0]
      const v = j[k]
      if (k === '$undefined' && v === true) return undefined
      if (k === '$buffer' && typeof v === 'string') return Buffer.from(v, 'hex')
      if (k === '$date') return new Date(typeof v === 'number' ? v : NaN)
      if (k === '$number') return { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 }[v]
    }
    const o = {}
    for (const k of keys) o[k] = fromTagged(j[k])
    return o
  }
  return j
}

function toTagged (v) {
  if (v === undefined) return { $undefined: true }
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $number: 'NaN' }
    if (v === Infinity) return { $number: 'Infinity' }
    if (v === -Infinity) return { $number: '-Infinity' }
    if (Object.is(v, -0)) return { $number: '-0' }
    return v
  }
  if (typeof v === 'bigint') return Number(v)
  if (v instanceof Uint8Array) return { $buffer: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') }
  if (v instanceof Date) {
    const t = v.getTime()
    return { $date: Number.isNaN(t) ? { $number: 'NaN' } : t }
  }
  if (Array.isArray(v)) return Array.from(v, toTagged)
  if (v !== null && typeof v === 'object') {
    const o = {}
    for (const k in v) o[k] = toTagged(v[k])
    return o
  }
  return v
}

// A small seeded PRNG (mulberry32) so failures replay.
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const EDGE_NUMBERS = [0, -0, 1, 63, 64, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31,
  2 ** 31 + 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769,
  -(2 ** 31), -(2 ** 31) - 1, 1.5, -0.25, 0.1, 1e300, 5e-324, NaN, Infinity, -Infinity]
const CHARS = ['a', 'Z', '0', ' ', '/', '\u0000', 'é', 'e\u0301', 'ß', 'Ω', '中', '文', '😀', '\u00ff', '\u0100', '\n']

function randomValue (r, depth) {
  const pick = (arr) => arr[Math.floor(r() * arr.length)]
  const kind = Math.floor(r() * (depth > 3 ? 8 : 11))
  switch (kind) {
    case 0: return undefined
    case 1: return null
    case 2: return r() < 0.5
    case 3: return pick(EDGE_NUMBERS)
    case 4: return Math.floor((r() - 0.5) * 2 ** Math.floor(r() * 60))
    case 5: return (r() - 0.5) * 10 ** Math.floor(r() * 20 - 10)
    case 6: {
      const n = pick([0, 1, 5, 31, 32, 33, 100, 255, 256, 300])
      let s = ''
      while (s.length < n) s += pick(CHARS)
      return s
    }
    case 7: {
      const n = pick([0, 1, 16, 255, 256, 1000])
      return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)))
    }
    case 8: return new Date(pick([0, 1000, 1795634745937, 1795634745000, -5, 2 ** 34 * 1000]))
    case 9: {
      const n = pick([0, 1, 3, 15, 16, 17])
      return Array.from({ length: n }, () => randomValue(r, depth + 1))
    }
    default: {
      const n = pick([0, 1, 3, 15, 16, 20])
      const o = {}
      for (let i = 0; i < n; i++) {
        const key = r() < 0.2 ? String(Math.floor(r() * 20)) : pick(CHARS) + pick(CHARS) + i
        o[key] = randomValue(r, depth + 1)
      }
      return o
    }
  }
}

function main () {
  const [cmd, arg, seed] = process.argv.slice(2)
  let out
  if (cmd === 'pack') {
    const { values } = JSON.parse(fs.readFileSync(arg, 'utf8'))
    out = values.map((v) => pack(fromTagged(v)).toString('hex'))
  } else if (cmd === 'unpack') {
    const { hex } = JSON.parse(fs.readFileSync(arg, 'utf8'))
    out = hex.map((h) => toTagged(unpack(Buffer.from(h, 'hex'))))
  } else if (cmd === 'generate') {
    const r = rng(Number(seed))
    out = []
    for (let i = 0; i < Number(arg); i++) {
      const bytes = pack(randomValue(r, 0))
      out.push({ hex: bytes.toString('hex'), json: toTagged(unpack(bytes)) })
    }
  } else if (cmd === 'sort') {
    const { strings } = JSON.parse(fs.readFileSync(arg, 'utf8'))
    const idx = strings.map((_, i) => i)
    idx.sort((a, b) => strings[a].localeCompare(strings[b]))
    out = idx
  } else {
    throw new Error('unknown command ' + cmd)
  }
  process.stdout.write(JSON.stringify(out))
}

main()
