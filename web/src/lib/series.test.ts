import { describe, expect, it } from 'vitest'
import { historySeries, peak } from './series'

const at = (sec: number) => new Date(Date.UTC(2026, 11, 7, 12, 0, sec)).toISOString()
const ms = (sec: number) => Date.UTC(2026, 11, 7, 12, 0, sec)

describe('historySeries', () => {
  it('keeps each line aligned with the times, a missing rate as null', () => {
    const s = historySeries(
      [
        { timestamp: at(10), ingested: 5, processed: null },
        { timestamp: at(20), ingested: 7.5, processed: 6 },
      ],
      10,
    )
    expect(s.t).toEqual([ms(10), ms(20)])
    expect(s.values).toEqual([
      [5, 7.5],
      [null, 6],
    ])
  })

  it('puts a null after a gap so the chart does not draw across missing time', () => {
    const s = historySeries(
      [
        { timestamp: at(10), ingested: 1, processed: 1 },
        { timestamp: at(40), ingested: 2, processed: 2 },
      ],
      10,
    )
    expect(s.t).toEqual([ms(10), ms(10) + 1, ms(40)])
    expect(s.values[0]).toEqual([1, null, 2])
    expect(s.values[1]).toEqual([1, null, 2])
  })

  it('skips points out of time order', () => {
    const s = historySeries(
      [
        { timestamp: at(20), ingested: 2, processed: 2 },
        { timestamp: at(10), ingested: 1, processed: 1 },
        { timestamp: at(20), ingested: 3, processed: 3 },
      ],
      10,
    )
    expect(s.t).toEqual([ms(20)])
    expect(s.values[0]).toEqual([2])
  })
})

describe('peak', () => {
  it('skips nulls and is 0 for an empty line', () => {
    expect(peak([null, 3, 7, null, 2])).toBe(7)
    expect(peak([])).toBe(0)
    expect(peak([null])).toBe(0)
  })
})
