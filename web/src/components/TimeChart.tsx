import { useEffect, useRef } from 'react'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { clockIncrs, clockLabels, dateAxisLabels, formatDateTime } from '../lib/format'
import { useScheme } from '../lib/theme'

export interface ChartLine {
  label: string
  values: (number | null)[]
  /** Dashed: a line drawn over another that may have the same values. */
  dashed?: boolean
}

export interface TimeChartProps {
  /** Times in milliseconds; for bars, the start of each bucket. */
  t: number[]
  lines: ChartLine[]
  /** Bars instead of lines (counts per bucket). */
  bars?: boolean
  /** A fixed height in pixels; without it the chart fills its container's height (220 px at least). */
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

const MIN_HEIGHT = 220

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

/** chartData is uPlot's data: times in seconds (bars: the middle of their bucket, where the cursor finds them), then each line. */
function chartData(t: number[], lines: ChartLine[], bars?: boolean): uPlot.AlignedData {
  const xs = t.map((x) => x / 1000)
  const half = bars ? bucketStep(xs) / 2 : 0
  return [xs.map((x) => x + half), ...lines.map((l) => l.values)] as uPlot.AlignedData
}

/**
 * tooltip shows, while the pointer is over the plot, the time of the point under it (a
 * bar's bucket start) and each line's value there, next to the pointer.
 */
function tooltip(time: (u: uPlot, sec: number) => string, value: (v: number | null) => string): uPlot.Plugin {
  let tip: HTMLDivElement
  return {
    hooks: {
      init: (u) => {
        tip = document.createElement('div')
        tip.className = 'chart-tip'
        tip.dataset.testid = 'chart-tooltip'
        tip.hidden = true
        u.over.appendChild(tip)
      },
      setCursor: (u) => {
        const { idx, left, top } = u.cursor
        if (idx === null || idx === undefined || left === undefined || left < 0 || top === undefined) {
          tip.hidden = true
          return
        }
        const head = document.createElement('div')
        head.className = 'chart-tip-time'
        head.textContent = time(u, u.data[0][idx])
        const rows = u.series.slice(1).map((s, i) => {
          const row = document.createElement('div')
          const swatch = document.createElement('span')
          swatch.className = 'chart-tip-swatch'
          swatch.style.background = String(s.stroke && typeof s.stroke === 'function' ? s.stroke(u, i + 1) : s.stroke)
          const v = u.data[i + 1][idx]
          row.append(swatch, `${s.label}: `, Object.assign(document.createElement('strong'), { textContent: value(v ?? null) }))
          return row
        })
        tip.replaceChildren(head, ...rows)
        tip.hidden = false
        // Beside the pointer, on the side with room.
        const w = tip.offsetWidth
        const x = left + 12 + w > u.over.clientWidth ? left - 12 - w : left + 12
        tip.style.transform = `translate(${Math.max(0, x)}px, ${Math.max(0, top - tip.offsetHeight - 8)}px)`
      },
    },
  }
}

/**
 * TimeChart draws time series with uPlot (canvas, about 20 kB gzip), with a tooltip and,
 * for several lines, a legend. The canvas is hidden from screen readers; `summary` describes
 * it instead. It follows its container's width, and its height unless given one.
 */
export function TimeChart({ t, lines, bars, height, summary, format, clock }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  // The colours are read from the theme when the chart is built: rebuild it when the theme changes.
  const scheme = useScheme()
  const shape = `${bars ? 'b' : 'l'}:${clock ? 'c' : ''}:${lines.map((l) => l.label).join('|')}:${height}:${scheme}`
  // The effect that builds the chart runs only when its shape changes; it reads the latest
  // props from here.
  const latest = useRef({ t, lines, bars, height, format, clock })
  useEffect(() => {
    latest.current = { t, lines, bars, height, format, clock }
  })

  useEffect(() => {
    const el = box.current
    if (!el) return
    const { t, lines, bars, height, format, clock } = latest.current
    const palette = [cssVar('--chart-1', '#0284c7'), cssVar('--chart-2', '#7c3aed')]
    const grid = cssVar('--chart-grid', '#e2e8f0')
    const muted = cssVar('--muted', '#475569')
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }
    const show = (v: number | null) => (v === null ? '—' : format ? format(v) : String(v))
    const size = () => ({ width: Math.max(el.clientWidth, 200), height: height ?? Math.max(el.clientHeight, MIN_HEIGHT) })
    const opts: uPlot.Options = {
      ...size(),
      legend: { show: false },
      // Room on the right for the last time label, which is centred on its tick.
      padding: [null, 40, null, null],
      cursor: { drag: { x: false, y: false } },
      plugins: [
        tooltip((u, sec) => {
          if (clock) return clockLabels([sec], 1)[0]
          return formatDateTime((sec - (bars ? bucketStep(u.data[0] as number[]) / 2 : 0)) * 1000)
        }, show),
      ],
      scales: {
        // A bar spans its bucket: half a bucket of room on each side of the first and last.
        x: bars
          ? { time: true, range: (u, min, max) => { const half = bucketStep(u.data[0] as number[]) / 2; return [min - half, max + half] } }
          : { time: true },
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
          : { ...axis, space: 80, values: (_u, ticks, _i, _space, step) => dateAxisLabels(ticks, step) },
        { ...axis, size: 56, ...(bars ? { incrs: countSteps } : {}), values: (_u, vals) => vals.map((v) => (format ? format(v) : String(v))) },
      ],
      series: [
        {},
        ...lines.map((l, i): uPlot.Series => {
          const color = palette[i % palette.length]
          return {
            label: l.label,
            stroke: color,
            // A dashed line is thinner than the one under it, which shows through its gaps.
            width: bars ? 0 : l.dashed ? 2 : 3,
            dash: l.dashed ? [6, 5] : undefined,
            fill: bars ? color + 'cc' : l.dashed ? undefined : color + '22',
            points: { show: false },
            spanGaps: false,
            ...(bars ? { paths: uPlot.paths.bars!({ size: [0.8, 64], align: 0 }) } : {}),
          }
        }),
      ],
    }
    const u = new uPlot(opts, chartData(t, lines, bars), el)
    plot.current = u
    const ro = new ResizeObserver(() => {
      const s = size()
      if (Math.abs(s.width - u.width) > 1 || Math.abs(s.height - u.height) > 1) u.setSize(s)
    })
    ro.observe(el)
    return () => {
      ro.disconnect()
      u.destroy()
      plot.current = null
    }
  }, [shape])

  useEffect(() => {
    plot.current?.setData(chartData(t, lines, bars))
  }, [t, lines, bars])

  return (
    <figure className={`m-0 flex flex-col gap-2 ${height ? '' : 'min-h-0 flex-1'}`}>
      <div ref={box} aria-hidden="true" className={`chart-box relative w-full overflow-hidden ${height ? '' : 'min-h-[220px] flex-1'}`} style={height ? { height } : undefined} />
      {lines.length > 1 && (
        <ul className="flex flex-wrap gap-x-4 gap-y-1 text-xs text-muted" aria-hidden="true" data-testid="chart-legend">
          {lines.map((l, i) => (
            <li key={l.label} className="flex items-center gap-1.5">
              <span
                className={`inline-block w-5 ${l.dashed ? 'h-0 border-t-2 border-dashed' : 'h-[3px]'}`}
                style={l.dashed ? { borderColor: `var(--chart-${(i % 2) + 1})` } : { background: `var(--chart-${(i % 2) + 1})` }}
              />
              {l.label}
            </li>
          ))}
        </ul>
      )}
      <figcaption className="sr-only">{summary}</figcaption>
    </figure>
  )
}
