// A key/value store. The first participant to claim it becomes the owner; only the owner
// may let other oplogs take part or remove them.
import assert, { equal } from 'assert'
import { index, isWriter } from 'contract'

const valuePath = (key) => '/values/' + String(key).replace(/^\/+/, '')

export async function get ({ key }) {
  const entry = await index.get(valuePath(key))
  return entry ? entry.value : undefined
}

export async function list ({ prefix = '' } = {}) {
  return (await index.list(valuePath(prefix))).map((e) => e.name)
}

export function put ({ key, value }, emit) {
  assert(isWriter, 'Only a participant can write')
  equal(typeof key, 'string', 'key must be a string')
  emit({ op: 'PUT', key, value })
}

export function del ({ key }, emit) {
  equal(typeof key, 'string', 'key must be a string')
  emit({ op: 'DEL', key })
}

export function claim (_params, emit) {
  emit({ op: 'CLAIM' })
}

export function invite ({ pubkey }, emit) {
  emit({ op: 'INVITE', pubkey })
}

export function expel ({ pubkey }, emit) {
  emit({ op: 'EXPEL', pubkey })
}

async function assertOwner (ack) {
  const owner = await index.get('/owner')
  assert(owner && owner.value === ack.origin, 'Only the owner can change participants')
}

export const apply = {
  PUT (tx, op) {
    tx.put(valuePath(op.key), op.value)
  },
  DEL (tx, op) {
    tx.delete(valuePath(op.key))
  },
  async CLAIM (tx, _op, ack) {
    const owner = await index.get('/owner')
    assert(!owner, 'The store already has an owner')
    tx.put('/owner', ack.origin)
  },
  async INVITE (tx, op, ack) {
    await assertOwner(ack)
    tx.addOplog({ pubkey: op.pubkey })
  },
  async EXPEL (tx, op, ack) {
    await assertOwner(ack)
    tx.removeOplog({ pubkey: op.pubkey })
  }
}
