// The Events page's filters, kept in the address (/events?timeRange=24h&userId=u1...) so that
// links to a filtered list work, and what the list shows of each event.
import type { StoredEvent } from '../api/types'
import { presets, rangeQuery, type Preset, type Range } from './range'

export const DEFAULT_PRESET: Preset = '1h'

/** The filters of the Events page. A custom range holds RFC 3339 times ('' when not picked yet). */
export interface EventFilters {
  range: Range
  eventType: string
  userId: string
  sessionId: string
  /** One property condition, FIELD.PATH:VALUE (metadata.page:/home). */
  prop: string
}

/** The text filters, the ones typed into the filter bar. */
export type TextFilter = 'eventType' | 'userId' | 'sessionId' | 'prop'
export const textFilters: TextFilter[] = ['eventType', 'userId', 'sessionId', 'prop']

const isPreset = (v: string | null): v is Preset => presets.some((p) => p.value === v)

/**
 * filtersFrom reads the filters from an address's query string: a custom range when it has
 * from or to, else the preset of timeRange (1 hour when missing or unknown).
 */
export function filtersFrom(sp: URLSearchParams): EventFilters {
  const tr = sp.get('timeRange')
  const range: Range =
    sp.has('from') || sp.has('to')
      ? { kind: 'custom', from: sp.get('from') ?? '', to: sp.get('to') ?? '' }
      : { kind: 'preset', preset: isPreset(tr) ? tr : DEFAULT_PRESET }
  const text = (k: TextFilter) => (sp.get(k) ?? '').trim()
  return { range, eventType: text('eventType'), userId: text('userId'), sessionId: text('sessionId'), prop: text('prop') }
}

const PROP = /^(metadata|payload|properties)\.[^:\s][^:]*:/

/** propError says what is wrong with a property condition, or returns null when it has the FIELD.PATH:VALUE shape (evp checks the rest). */
export function propError(prop: string): string | null {
  if (!prop || PROP.test(prop)) return null
  return 'A property condition is FIELD.PATH:VALUE, FIELD being metadata, payload or properties: metadata.page:/home, payload.amount:12.5.'
}

/**
 * eventsQuery returns the query parameters of GET /api/v1/events (and of its export) for
 * filters, or an error message when the range or the property condition is not valid.
 */
export function eventsQuery(f: EventFilters): { query: Record<string, string | string[]> } | { error: string } {
  // Events have no limit on a range's length (a page reads for half a second at most).
  const rq = rangeQuery(f.range, Infinity)
  if ('error' in rq) return rq
  const pe = propError(f.prop)
  if (pe) return { error: pe }
  const query: Record<string, string | string[]> = { ...rq.query }
  if (f.eventType) query.eventType = f.eventType
  if (f.userId) query.userId = f.userId
  if (f.sessionId) query.sessionId = f.sessionId
  if (f.prop) query.prop = [f.prop]
  return { query }
}

/**
 * eventsHref links to the Events page with range (as the Analytics page holds it: a custom
 * range in local time) and the filters given. A range that is not valid is left out.
 */
export function eventsHref(range: Range, filters: Partial<Record<TextFilter, string>>): string {
  const sp = new URLSearchParams()
  const rq = rangeQuery(range)
  if ('query' in rq) for (const [k, v] of Object.entries(rq.query)) sp.set(k, v)
  for (const k of textFilters) if (filters[k]) sp.set(k, filters[k])
  return `/events?${sp}`
}

function short(v: unknown, max = 40): string {
  const s = typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v)
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

/**
 * preview is a line about an event's properties for the list: the top-level members of its
 * payload, then of its metadata, as key=value (long values cut), at most max characters.
 */
export function preview(e: Pick<StoredEvent, 'payload' | 'metadata'>, max = 100): string {
  const parts: string[] = []
  for (const obj of [e.payload, e.metadata]) {
    if (obj && typeof obj === 'object') for (const [k, v] of Object.entries(obj)) parts.push(`${k}=${short(v)}`)
  }
  const line = parts.join(' · ')
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}
