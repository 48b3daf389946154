import { describe, expect, it } from 'vitest'
import { appendSample, emptySeries, peak, rateFromCounter } from './series'

describe('appendSample', () => {
  it('adds samples in time order and keeps each line aligned with the times', () => {
    let s = emptySeries(2)
    s = appendSample(s, 1000, [1, 10], 60_000)
    s = appendSample(s, 2000, [2, 20], 60_000)
    expect(s.t).toEqual([1000, 2000])
    expect(s.values).toEqual([[1, 2], [10, 20]])
  })

  it('drops samples older than the window', () => {
    let s = emptySeries(1)
    for (let t = 0; t <= 10_000; t += 1000) s = appendSample(s, t, [t], 5000)
    expect(s.t).toEqual([5000, 6000, 7000, 8000, 9000, 10_000])
    expect(s.values[0]).toEqual([5000, 6000, 7000, 8000, 9000, 10_000])
  })

  it('ignores a sample that is not newer than the last one', () => {
    let s = appendSample(emptySeries(1), 2000, [5], 60_000)
    const same = appendSample(s, 2000, [6], 60_000)
    const older = appendSample(s, 1000, [7], 60_000)
    expect(same).toBe(s)
    expect(older).toBe(s)
    s = appendSample(s, 3000, [8], 60_000)
    expect(s.values[0]).toEqual([5, 8])
  })

  it('inserts a null after a gap so the chart does not draw across missing time', () => {
    let s = appendSample(emptySeries(1), 1000, [1], 60_000, 3000)
    s = appendSample(s, 2000, [2], 60_000, 3000)
    s = appendSample(s, 20_000, [3], 60_000, 3000)
    expect(s.values[0]).toEqual([1, 2, null, 3])
    expect(s.t).toEqual([1000, 2000, 2001, 20_000])
  })

  it('stores missing and non-finite values as null', () => {
    const s = appendSample(emptySeries(3), 1000, [undefined, Number.NaN, Infinity], 60_000)
    expect(s.values).toEqual([[null], [null], [null]])
  })

  it('does not modify the series it was given', () => {
    const s = appendSample(emptySeries(1), 1000, [1], 60_000)
    appendSample(s, 2000, [2], 60_000)
    expect(s.t).toEqual([1000])
    expect(s.values[0]).toEqual([1])
  })
})

describe('rateFromCounter', () => {
  it('is the counter increase per second', () => {
    expect(rateFromCounter({ t: 0, v: 100 }, { t: 2000, v: 300 })).toBe(100)
  })
  it('is null without a previous reading, after a reset, or for no elapsed time', () => {
    expect(rateFromCounter(null, { t: 1000, v: 5 })).toBeNull()
    expect(rateFromCounter({ t: 0, v: 500 }, { t: 1000, v: 3 })).toBeNull()
    expect(rateFromCounter({ t: 1000, v: 1 }, { t: 1000, v: 9 })).toBeNull()
  })
})

describe('peak', () => {
  it('skips nulls and is 0 for an empty line', () => {
    expect(peak([null, 3, 7, null, 2])).toBe(7)
    expect(peak([])).toBe(0)
    expect(peak([null])).toBe(0)
  })
})
