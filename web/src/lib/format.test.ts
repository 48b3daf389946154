import { describe, expect, it } from 'vitest'
import { clockIncrs, clockLabels, dateAxisLabels, formatAgo, formatCount, formatDateTime, formatDuration, formatLatency, formatPercent, formatRate } from './format'

describe('formatCount', () => {
  it('keeps small numbers whole and abbreviates large ones', () => {
    expect(formatCount(0)).toBe('0')
    expect(formatCount(999)).toBe('999')
    expect(formatCount(123_456)).toBe('123k')
    expect(formatCount(1_234_567)).toBe('1.23M')
    expect(formatCount(12_000_000)).toBe('12M')
    expect(formatCount(100_000)).toBe('100k')
    expect(formatCount(200_000_000)).toBe('200M')
    expect(formatCount(2_500_000_000)).toBe('2.5B')
  })
  it('never shows NaN', () => {
    expect(formatCount(undefined)).toBe('—')
    expect(formatCount(Number.NaN)).toBe('—')
  })
})

describe('formatRate', () => {
  it('shows a tenth below 10/s and abbreviates large rates', () => {
    expect(formatRate(0)).toBe('0/s')
    expect(formatRate(0.44)).toBe('0.4/s')
    expect(formatRate(3)).toBe('3/s')
    expect(formatRate(150_000)).toBe('150k/s')
    expect(formatRate(1_500_000)).toBe('1.5M/s')
  })
})

describe('formatPercent', () => {
  it('shows every share with one decimal and marks tiny shares', () => {
    expect(formatPercent(12.345)).toBe('12.3%')
    expect(formatPercent(30)).toBe('30.0%')
    expect(formatPercent(18.75)).toBe('18.8%')
    expect(formatPercent(100)).toBe('100.0%')
    expect(formatPercent(0.04)).toBe('<0.1%')
    expect(formatPercent(0)).toBe('0.0%')
  })
})

describe('formatLatency', () => {
  it('shows sub-millisecond latencies in microseconds, never "0.0 ms"', () => {
    expect(formatLatency(0.017)).toBe('17 µs')
    expect(formatLatency(0.0004)).toBe('<1 µs')
    expect(formatLatency(0)).toBe('<1 µs')
    expect(formatLatency(0.389)).toBe('389 µs')
    expect(formatLatency(1.25)).toBe('1.3 ms')
    expect(formatLatency(42.4)).toBe('42 ms')
    expect(formatLatency(undefined)).toBe('—')
  })
})

describe('dates', () => {
  // In the viewer's locale, so compared with what the locale makes of the same parts.
  const t = Date.UTC(2026, 11, 7, 14, 5)
  const day = new Date(t).toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
  const time = new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
  it('has one style: the month abbreviated, in full dates and on the chart axis', () => {
    expect(formatDateTime(t)).toContain(day)
    expect(formatDateTime(t)).toContain(time)
    expect(formatDateTime(t)).not.toMatch(/\d+\/\d+\/\d+/)
    expect(dateAxisLabels([t / 1000], 86400)).toEqual([day])
  })
  it('labels times on the axis, with the day under the first tick and where a day starts', () => {
    const ticks = [t / 1000, t / 1000 + 3600, t / 1000 + 86400]
    const [first, second, nextDay] = dateAxisLabels(ticks, 3600)
    expect(first).toBe(`${time}\n${day}`)
    expect(second).not.toContain('\n')
    expect(nextDay).toContain('\n')
    expect(nextDay).not.toContain(day)
  })
})

describe('formatAgo', () => {
  const now = Date.parse('2026-01-01T12:00:00Z')
  it('says how long ago', () => {
    expect(formatAgo(now - 2000, now)).toBe('just now')
    expect(formatAgo(now - 42_000, now)).toBe('42 s ago')
    expect(formatAgo('2026-01-01T11:57:00Z', now)).toBe('3 min ago')
    expect(formatAgo(now - 5 * 3600_000, now)).toBe('5 h ago')
    expect(formatAgo(now - 3 * 86400_000, now)).toBe('3 d ago')
    expect(formatAgo(null, now)).toBe('never')
  })
})

describe('formatDuration', () => {
  it('uses the two largest units', () => {
    expect(formatDuration(42)).toBe('42 s')
    expect(formatDuration(300)).toBe('5 min')
    expect(formatDuration(3 * 3600 + 20 * 60)).toBe('3 h 20 min')
    expect(formatDuration(2 * 86400 + 4 * 3600)).toBe('2 d 4 h')
  })
})

describe('clock axis', () => {
  it('steps by whole seconds for under about a minute of data, by minutes after', () => {
    expect(clockIncrs(6)[0]).toBe(1)
    expect(clockIncrs(60)).toContain(5)
    expect(clockIncrs(120)[0]).toBe(60)
    expect(clockIncrs(600).every((s) => s % 60 === 0)).toBe(true)
  })
  it('labels ticks with seconds only when they are less than a minute apart', () => {
    const t = Date.UTC(2026, 10, 25, 17, 4, 5) / 1000
    const [withSeconds] = clockLabels([t], 5)
    const [minutes] = clockLabels([t], 60)
    expect(withSeconds).toMatch(/05/)
    expect(withSeconds).not.toMatch(/\./)
    expect(minutes).not.toMatch(/:05/)
    expect(withSeconds.length).toBeGreaterThan(minutes.length)
  })
})
