import { describe, expect, it } from 'vitest'
import { clockIncrs, clockLabels, formatAgo, formatCount, formatDuration, formatPercent, formatRate } from './format'

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
  it('rounds to a tenth and marks tiny shares', () => {
    expect(formatPercent(12.345)).toBe('12.3%')
    expect(formatPercent(50)).toBe('50%')
    expect(formatPercent(0.04)).toBe('<0.1%')
    expect(formatPercent(0)).toBe('0%')
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
