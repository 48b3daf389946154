import { useEffect, useRef } from 'react'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { clockIncrs, clockLabels } from '../lib/format'
import { useScheme } from '../lib/theme'

export interface TimeChartProps {
  /** Times in milliseconds. */
  t: number[]
  lines: { label: string; values: (number | null)[]; color?: string }[]
  /** Bars instead of lines (counts per bucket). */
  bars?: boolean
  height?: number
  /** What the chart shows, for screen readers. */
  summary: string
  format?: (v: number) => string
  /**
   * A live clock axis: ticks on whole seconds labelled with seconds while less than about a
   * minute of data is shown, on whole minutes after (the default time axis shows
   * milliseconds for a few seconds of data).
   */
  clock?: boolean
}

/** bucketStep is the spacing of the first two x values (seconds); 60 with fewer. */
function bucketStep(xs: number[]): number {
  return xs.length > 1 ? xs[1] - xs[0] : 60
}

/** Whole-number tick steps (1, 2, 5, 10, 20, 50...) for counts, which have no fractions. */
const countSteps = Array.from({ length: 10 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat()

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim()
  return v || fallback
}

/**
 * TimeChart draws time series with uPlot (canvas, about 20 kB gzip). The canvas is hidden from
 * screen readers; `summary` describes it instead. It follows its container's width.
 */
export function TimeChart({ t, lines, bars, height = 220, summary, format, clock }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  // The colours are read from the theme when the chart is built: rebuild it when the theme changes.
  const scheme = useScheme()
  const shape = `${bars ? 'b' : 'l'}:${clock ? 'c' : ''}:${lines.map((l) => l.label).join('|')}:${height}:${scheme}`

  useEffect(() => {
    const el = box.current
    if (!el) return
    const palette = [cssVar('--chart-1', '#0284c7'), cssVar('--chart-2', '#7c3aed')]
    const grid = cssVar('--chart-grid', '#e2e8f0')
    const muted = cssVar('--muted', '#475569')
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      legend: { show: lines.length > 1 },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // Bars are drawn from their bucket's start to its end: make room for the last one.
        x: bars ? { time: true, range: (u, min, max) => [min, max + bucketStep(u.data[0] as number[])] } : { time: true },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        clock
          ? {
              ...axis,
              space: 80,
              incrs: (_u, _i, min, max) => clockIncrs(max - min),
              values: (_u, ticks, _i, _space, step) => clockLabels(ticks, step),
            }
          : { ...axis, space: 80 },
        { ...axis, size: 56, ...(bars ? { incrs: countSteps } : {}), values: (_u, vals) => vals.map((v) => (format ? format(v) : String(v))) },
      ],
      series: [
        clock ? { value: (_u: uPlot, v: number | null) => (v === null ? '—' : clockLabels([v], 1)[0]) } : {},
        ...lines.map((l, i) => {
          const color = l.color ?? palette[i % palette.length]
          return {
            label: l.label,
            stroke: color,
            width: bars ? 0 : 2,
            fill: color + (bars ? 'cc' : '22'),
            points: { show: false },
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => (v === null ? '—' : format ? format(v) : String(v)),
            ...(bars ? { paths: uPlot.paths.bars!({ size: [0.8, 64], align: 1 }) } : {}),
          }
        }),
      ],
    }
    const data = [t.map((x) => x / 1000), ...lines.map((l) => l.values)] as uPlot.AlignedData
    const u = new uPlot(opts, data, el)
    plot.current = u
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height })
    })
    ro.observe(el)
    return () => {
      ro.disconnect()
      u.destroy()
      plot.current = null
    }
    // Rebuilt only when the shape changes; data updates go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape])

  useEffect(() => {
    plot.current?.setData([t.map((x) => x / 1000), ...lines.map((l) => l.values)] as uPlot.AlignedData)
  }, [t, lines])

  return (
    <figure className="m-0">
      <div ref={box} aria-hidden="true" className="w-full overflow-hidden" />
      <figcaption className="sr-only">{summary}</figcaption>
    </figure>
  )
}
