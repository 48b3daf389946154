// The Live page's rate chart: evp keeps the last 10 minutes of ingestion and processing rates
// (GET /api/metrics/history), so the chart has them from its first paint.
import type { RatePoint } from '../api/types'

/** A Series holds sample times (ms) and one array of values per line, oldest first. */
export interface Series {
  t: number[]
  values: (number | null)[][]
}

/**
 * historySeries turns the rate history into chart lines: ingested, then processed. Where
 * two points are more than one and a half steps apart (samples were missed), a null point
 * between them makes the chart show a gap rather than a line across the missing time.
 * Points not in time order are skipped.
 */
export function historySeries(points: RatePoint[], stepSeconds: number): Series {
  const s: Series = { t: [], values: [[], []] }
  const gapMs = stepSeconds * 1500
  for (const p of points) {
    const t = Date.parse(p.timestamp)
    const last = s.t[s.t.length - 1]
    if (!Number.isFinite(t) || (last !== undefined && t <= last)) continue
    if (last !== undefined && t - last > gapMs) {
      s.t.push(last + 1)
      s.values.forEach((line) => line.push(null))
    }
    s.t.push(t)
    s.values[0].push(finite(p.ingested))
    s.values[1].push(finite(p.processed))
  }
  return s
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

/** peak is the largest non-null value of a line (0 when there is none). */
export function peak(line: (number | null)[]): number {
  let m = 0
  for (const v of line) if (v !== null && v > m) m = v
  return m
}
