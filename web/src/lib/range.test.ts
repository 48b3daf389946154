import { describe, expect, it } from 'vitest'
import { rangeQuery, toLocalInput } from './range'

describe('rangeQuery', () => {
  it('sends a preset as timeRange', () => {
    expect(rangeQuery({ kind: 'preset', preset: '24h' })).toEqual({ query: { timeRange: '24h' } })
  })
  it('sends a custom range as RFC 3339 UTC from and to', () => {
    const from = new Date(2026, 0, 2, 3, 4)
    const to = new Date(2026, 0, 2, 9, 0)
    const r = rangeQuery({ kind: 'custom', from: toLocalInput(from), to: toLocalInput(to) })
    expect(r).toEqual({ query: { from: from.toISOString().replace('.000Z', 'Z'), to: to.toISOString().replace('.000Z', 'Z') } })
  })
  it('refuses incomplete, inverted and too long custom ranges', () => {
    expect(rangeQuery({ kind: 'custom', from: '', to: '2026-01-01T00:00' })).toHaveProperty('error')
    expect(rangeQuery({ kind: 'custom', from: '2026-01-02T00:00', to: '2026-01-01T00:00' })).toHaveProperty('error')
    expect(rangeQuery({ kind: 'custom', from: '2026-01-01T00:00', to: '2026-03-01T00:00' })).toHaveProperty('error')
  })
})
