// Client-side time series for the Live page: evp reports rates at the moment of each poll, the
// dashboard keeps the last few minutes of them to draw.

/** A Series holds sample times (ms) and one array of values per line, oldest first. */
export interface Series {
  t: number[]
  values: (number | null)[][]
}

export function emptySeries(lines: number): Series {
  return { t: [], values: Array.from({ length: lines }, () => []) }
}

/**
 * appendSample returns a new series with the sample at time t added and samples older than
 * windowMs before t dropped. A sample not newer than the last is ignored (a retried poll must
 * not draw backwards). When more than gapMs passed since the last sample (polls failed, the tab
 * slept), a null point is put in between so that the chart shows a gap instead of a straight
 * line across the missing time. Values that are not finite numbers are stored as null.
 */
export function appendSample(s: Series, t: number, sample: (number | null | undefined)[], windowMs: number, gapMs = Infinity): Series {
  const n = s.t.length
  if (n > 0 && t <= s.t[n - 1]) return s
  const clean = s.values.map((_, i) => {
    const v = sample[i]
    return typeof v === 'number' && Number.isFinite(v) ? v : null
  })
  const ts = s.t.slice()
  const vs = s.values.map((line) => line.slice())
  if (n > 0 && t - s.t[n - 1] > gapMs) {
    ts.push(s.t[n - 1] + 1)
    vs.forEach((line) => line.push(null))
  }
  ts.push(t)
  vs.forEach((line, i) => line.push(clean[i]))
  const cutoff = t - windowMs
  let drop = 0
  while (drop < ts.length && ts[drop] < cutoff) drop++
  return { t: ts.slice(drop), values: vs.map((line) => line.slice(drop)) }
}

/**
 * rateFromCounter turns two readings of a monotonically growing counter into a rate per
 * second; a counter that went down (the process restarted) or a non-positive interval gives null.
 */
export function rateFromCounter(prev: { t: number; v: number } | null, cur: { t: number; v: number }): number | null {
  if (!prev) return null
  const dt = (cur.t - prev.t) / 1000
  if (dt <= 0 || cur.v < prev.v) return null
  return (cur.v - prev.v) / dt
}

/** peak is the largest non-null value of a line (0 when there is none). */
export function peak(line: (number | null)[]): number {
  let m = 0
  for (const v of line) if (v !== null && v > m) m = v
  return m
}
