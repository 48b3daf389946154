// Number and time formatting for the dashboard: compact, locale-aware, never "NaN".

const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 })

/** formatCount shows 1234 as "1,234" and 1234567 as "1.23M". */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—'
  const abs = Math.abs(n)
  if (abs >= 1e9) return trim(n / 1e9) + 'B'
  if (abs >= 1e6) return trim(n / 1e6) + 'M'
  if (abs >= 1e5) return trim(n / 1e3) + 'k'
  return intFmt.format(Math.round(n))
}

function trim(x: number): string {
  const fixed = Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2)
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed
}

/** formatRate shows events per second with sensible precision: "0", "0.4/s", "12.5/s", "48.2k/s". */
export function formatRate(perSec: number | null | undefined): string {
  if (perSec === null || perSec === undefined || !Number.isFinite(perSec)) return '—'
  if (perSec === 0) return '0/s'
  if (perSec < 10) return `${perSec.toFixed(1).replace(/\.0$/, '')}/s`
  return `${formatCount(perSec)}/s`
}

/** formatDecimal shows a ratio with up to two decimals. */
export function formatDecimal(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—'
  return x.toLocaleString(undefined, { maximumFractionDigits: 2 })
}

/** formatPercent shows every share with one decimal, 12.345 as "12.3%" and 30 as "30.0%", and values under 0.1 as "<0.1%". */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return '—'
  if (p > 0 && p < 0.1) return '<0.1%'
  return `${p.toFixed(1)}%`
}

/** formatLatency shows a duration in milliseconds: "12 ms", "1.5 ms", "40 µs", "<1 µs". */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—'
  if (ms < 0.001) return '<1 µs'
  if (ms < 1) return `${Math.round(ms * 1000)} µs`
  if (ms < 10) return `${ms.toFixed(1)} ms`
  return `${Math.round(ms)} ms`
}

/** formatAgo says how long ago t was, relative to now: "just now", "12 s ago", "3 min ago". */
export function formatAgo(t: string | number | Date | null | undefined, now = Date.now()): string {
  if (t === null || t === undefined || t === '') return 'never'
  const ms = now - new Date(t).getTime()
  if (!Number.isFinite(ms)) return '—'
  const s = Math.round(ms / 1000)
  if (s < 0) return 'in the future'
  if (s < 5) return 'just now'
  if (s < 60) return `${s} s ago`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ago`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h} h ago`
  return `${Math.floor(h / 24)} d ago`
}

// Every date the dashboard shows has this one style, in the viewer's locale: the month
// abbreviated ("Dec 7, 2026, 14:05"; the chart axis "Dec 7" and "14:05").
const dateOpts: Intl.DateTimeFormatOptions = { year: 'numeric', month: 'short', day: 'numeric' }
const timeOpts: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit' }

/** formatDateTime shows a time in the viewer's locale, with seconds when asked. */
export function formatDateTime(t: string | number | Date | null | undefined, seconds = false): string {
  if (t === null || t === undefined || t === '') return '—'
  const d = new Date(t)
  if (Number.isNaN(d.getTime())) return '—'
  return d.toLocaleString(undefined, { ...dateOpts, ...timeOpts, ...(seconds ? { second: '2-digit' } : {}) })
}

/**
 * dateAxisLabels labels the ticks (Unix seconds) of a time axis in formatDateTime's style:
 * the day ("Dec 7") for ticks a day or more apart; otherwise the time ("14:05"), with the day
 * on a second line under the first tick and under each tick that starts another day.
 */
export function dateAxisLabels(ticks: number[], step: number): string[] {
  const day = (d: Date) => d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
  let last = ''
  return ticks.map((s) => {
    const d = new Date(s * 1000)
    if (step >= 86400) return day(d)
    const label = d.toLocaleTimeString(undefined, timeOpts)
    const today = day(d)
    if (today === last) return label
    last = today
    return `${label}\n${today}`
  })
}

/** formatDuration shows seconds as "42 s", "5 min", "3 h 20 min", "2 d 4 h". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '—'
  if (sec < 60) return `${Math.floor(sec)} s`
  const m = Math.floor(sec / 60)
  if (m < 60) return `${m} min`
  const h = Math.floor(m / 60)
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`
  const d = Math.floor(h / 24)
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`
}

/**
 * clockIncrs are the tick steps (seconds) of a live clock axis: whole seconds while less than
 * about a minute of data is shown, whole minutes from then on.
 */
export function clockIncrs(span: number): number[] {
  const minutes = [60, 120, 300, 600, 900, 1800, 3600]
  return span < 75 ? [1, 2, 5, 10, 15, 30, ...minutes] : minutes
}

/** clockLabels labels clock-axis ticks (Unix seconds): with seconds when ticks are less than a minute apart. */
export function clockLabels(ticks: number[], step: number): string[] {
  const opts: Intl.DateTimeFormatOptions =
    step < 60 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' }
  return ticks.map((s) => new Date(s * 1000).toLocaleTimeString(undefined, opts))
}

/** formatClock shows the time of day of t with seconds, in the viewer's locale ("14:05:03"). */
export function formatClock(t: string | number | Date): string {
  const d = new Date(t)
  if (Number.isNaN(d.getTime())) return '—'
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
}
