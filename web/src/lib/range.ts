// Time ranges of the Analytics page and the query parameters they become.

export type Preset = '15m' | '1h' | '24h' | '7d'
export const presets: { value: Preset; label: string }[] = [
  { value: '15m', label: '15 min' },
  { value: '1h', label: '1 hour' },
  { value: '24h', label: '24 hours' },
  { value: '7d', label: '7 days' },
]

export type Range = { kind: 'preset'; preset: Preset } | { kind: 'custom'; from: string; to: string }

/** toLocalInput formats a time for <input type="datetime-local"> (local time, minutes). */
export function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`
}

/**
 * rangeQuery returns the query parameters of a range, or an error message when a custom range
 * is incomplete, inverted or longer than maxDays (analytics allow 31). Custom times are local
 * (what the inputs show) or RFC 3339, and sent as RFC 3339 UTC.
 */
export function rangeQuery(r: Range, maxDays = 31): { query: Record<string, string> } | { error: string } {
  if (r.kind === 'preset') return { query: { timeRange: r.preset } }
  const from = new Date(r.from)
  const to = new Date(r.to)
  if (!r.from || !r.to || Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) {
    return { error: 'Pick both a start and an end time.' }
  }
  if (from >= to) return { error: 'The start must be before the end.' }
  if (to.getTime() - from.getTime() > maxDays * 24 * 3600 * 1000) return { error: `A custom range can span at most ${maxDays} days.` }
  const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z')
  return { query: { from: iso(from), to: iso(to) } }
}

/** spansDays reports whether a range is longer than a day (its labels then need dates). */
export function spansDays(startISO: string, endISO: string): boolean {
  return new Date(endISO).getTime() - new Date(startISO).getTime() > 24 * 3600 * 1000
}
