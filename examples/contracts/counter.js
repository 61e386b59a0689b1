// A counter anyone in the database can increase.
import { index } from 'contract'

export async function get () {
  const entry = await index.get('/counter')
  return entry ? entry.value : 0
}

export function increment ({ by = 1 } = {}, emit) {
  if (typeof by !== 'number' || !Number.isFinite(by)) throw new Error('by must be a finite number')
  emit({ op: 'INCREMENT', by })
}

export const apply = {
  async INCREMENT (tx, op) {
    const entry = await index.get('/counter')
    tx.put('/counter', (entry ? entry.value : 0) + op.by)
  }
}
