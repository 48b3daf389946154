import { describe, expect, it } from 'vitest'
import { eventsHref, eventsQuery, filtersFrom, preview, propError } from './events'
import { toLocalInput } from './range'

const sp = (s: string) => new URLSearchParams(s)

describe('filtersFrom', () => {
  it('reads a preset, 1 hour when missing or unknown, and the text filters trimmed', () => {
    expect(filtersFrom(sp('timeRange=7d&userId=%20u1%20&prop=metadata.page:/home'))).toEqual({
      range: { kind: 'preset', preset: '7d' },
      eventType: '',
      userId: 'u1',
      sessionId: '',
      prop: 'metadata.page:/home',
    })
    expect(filtersFrom(sp('')).range).toEqual({ kind: 'preset', preset: '1h' })
    expect(filtersFrom(sp('timeRange=90d')).range).toEqual({ kind: 'preset', preset: '1h' })
  })
  it('reads a custom range when from or to is there, even empty', () => {
    expect(filtersFrom(sp('timeRange=1h&from=2026-01-10T10:00:00Z&to=2026-01-10T11:00:00Z')).range).toEqual({ kind: 'custom', from: '2026-01-10T10:00:00Z', to: '2026-01-10T11:00:00Z' })
    expect(filtersFrom(sp('from=')).range).toEqual({ kind: 'custom', from: '', to: '' })
  })
})

describe('eventsQuery', () => {
  it('sends the range, the filters given, and the property condition as a repeatable prop', () => {
    expect(eventsQuery(filtersFrom(sp('timeRange=24h&eventType=click&prop=payload.amount:12.5')))).toEqual({
      query: { timeRange: '24h', eventType: 'click', prop: ['payload.amount:12.5'] },
    })
    expect(eventsQuery(filtersFrom(sp('from=2026-01-10T10:00:00Z&to=2026-01-10T11:00:00Z')))).toEqual({
      query: { from: '2026-01-10T10:00:00Z', to: '2026-01-10T11:00:00Z' },
    })
  })
  it('refuses an incomplete range and a malformed property condition', () => {
    expect(eventsQuery(filtersFrom(sp('from=2026-01-10T10:00:00Z')))).toHaveProperty('error')
    expect(eventsQuery(filtersFrom(sp('prop=page:/home')))).toHaveProperty('error')
  })
})

describe('propError', () => {
  it('accepts FIELD.PATH:VALUE for metadata, payload and properties, an empty value too', () => {
    for (const p of ['', 'metadata.page:/home', 'payload.cart.total:12.5', 'properties.url:https://x.example/a:b', 'metadata.flag:']) expect(propError(p)).toBeNull()
  })
  it('refuses other fields, a missing path and a missing colon', () => {
    for (const p of ['page:/home', 'userId.x:1', 'metadata:1', 'metadata.:1', 'metadata.page']) expect(propError(p)).toMatch(/FIELD\.PATH:VALUE/)
  })
})

describe('eventsHref', () => {
  it('links with a preset range and the filters given', () => {
    expect(eventsHref({ kind: 'preset', preset: '24h' }, { userId: 'user 1', eventType: '' })).toBe('/events?timeRange=24h&userId=user+1')
  })
  it('links with a custom range (local time) as RFC 3339 UTC, and leaves an invalid one out', () => {
    const from = new Date(2026, 0, 10, 9, 30)
    const to = new Date(2026, 0, 10, 10, 30)
    const href = eventsHref({ kind: 'custom', from: toLocalInput(from), to: toLocalInput(to) }, { eventType: 'signup' })
    const q = new URL(href, 'http://x').searchParams
    expect([q.get('from'), q.get('to'), q.get('eventType')]).toEqual([from.toISOString().replace('.000Z', 'Z'), to.toISOString().replace('.000Z', 'Z'), 'signup'])
    expect(eventsHref({ kind: 'custom', from: '', to: '' }, { eventType: 'signup' })).toBe('/events?eventType=signup')
  })
})

describe('preview', () => {
  it('shows the payload, then the metadata, as key=value, long values and lines cut', () => {
    expect(preview({ payload: { amount: 12.5, ok: true, tags: ['a'] }, metadata: { page: '/home' } })).toBe('amount=12.5 · ok=true · tags=["a"] · page=/home')
    expect(preview({})).toBe('')
    expect(preview({ payload: { text: 'x'.repeat(100) } })).toBe(`text=${'x'.repeat(39)}…`)
    expect(preview({ payload: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i])) }, 40)).toHaveLength(40)
  })
})
