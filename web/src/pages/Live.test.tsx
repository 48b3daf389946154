import { afterEach, describe, expect, it, vi } from 'vitest'
import { act, render, screen, within } from '@testing-library/react'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession } from '../lib/session'
import type { Health, Metrics, RateHistory, StreamInfo } from '../api/types'
import { Live } from './Live'

// uPlot draws on a canvas, which jsdom lacks; the chart is covered by the browser test.
vi.mock('../components/TimeChart', () => ({ TimeChart: ({ summary }: { summary: string }) => <figure data-testid="chart">{summary}</figure> }))

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const ok = (data: unknown) => json(200, { success: true, data })

const metrics: Metrics = {
  ingestion: { rate: 12, totalIngested: 1200 },
  processing: { totalEvents: 1100, eventsPerSecond: 11, totalBatches: 10, lastBatchSize: 100, lastProcessedTimestamp: '2026-12-07T12:00:00Z' },
  errors: { failedEvents: 0, dlqEvents: 0 },
  queue: { streamLength: 100, consumerGroups: 1, pendingMessages: 0 },
  eventsByType: {},
  timestamp: '2026-12-07T12:00:00Z',
}
const stream: StreamInfo = { backend: 'embedded', stream: 'buffer', partitions: 1, streams: ['buffer'], length: 0, totalEnqueued: 1200, groups: [], timestamp: '2026-12-07T12:00:00Z' }
const healthy: Health = {
  status: 'healthy', version: 'v1', uptime: 700, timestamp: '2026-12-07T12:00:00Z',
  services: { buffer: { status: 'up', latencyMs: 0.017 }, eventStore: { status: 'up', latencyMs: 0.389 } },
}
// Ten minutes of points, 10 s apart, as evp keeps them.
const history: RateHistory = {
  stepSeconds: 10,
  points: Array.from({ length: 60 }, (_, i) => ({ timestamp: new Date(Date.UTC(2026, 11, 7, 11, 50, 10) + i * 10_000).toISOString(), ingested: i, processed: i === 59 ? null : 2 * i })),
}

/** A fake evp; health answers what healthAnswer returns (an Error: evp does not answer). */
function fakeEvp(health: () => Health | Error) {
  vi.stubGlobal('fetch', vi.fn(async (url: string) => {
    if (url === '/api/metrics') return ok(metrics)
    if (url === '/api/metrics/ingestion') return ok(metrics.ingestion)
    if (url === '/api/metrics/stream') return ok(stream)
    if (url === '/api/metrics/history') return ok(history)
    if (url === '/api/health') {
      const h = health()
      if (h instanceof Error) throw h
      return json(200, h)
    }
    return json(404, { success: false, error: { code: 'NOT_FOUND', message: 'no route' } })
  }))
}

function renderPage() {
  saveSession({ kind: 'apiKey', key: 'evp_test' })
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <AuthProvider>
          <Live />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
  return qc
}

const healthPanel = () => screen.getByRole('heading', { name: 'Health' }).closest('section') as HTMLElement

afterEach(() => vi.unstubAllGlobals())

describe('Live', () => {
  it('draws the last 10 minutes from evp at once, and latencies under a millisecond in µs', async () => {
    fakeEvp(() => healthy)
    renderPage()
    const chart = await screen.findByTestId('chart')
    expect(chart).toHaveTextContent('over the last 10 min')
    expect(chart).toHaveTextContent('ingestion peaked at 59/s, processing at 116/s')
    const components = await screen.findByRole('list', { name: 'Components' })
    expect(components).toHaveTextContent('17 µs')
    expect(components).toHaveTextContent('389 µs')
    expect(components).not.toHaveTextContent('0.0 ms')
  })

  it('says evp is unreachable, not healthy, when the health check stops answering', async () => {
    let down = false
    fakeEvp(() => (down ? new TypeError('Failed to fetch') : healthy))
    const qc = renderPage()
    await within(await screen.findByRole('list', { name: 'Components' })).findByText('eventStore')
    expect(within(healthPanel()).getByText('healthy')).toBeInTheDocument()
    down = true
    await act(() => qc.refetchQueries({ queryKey: ['health'] }))
    const panel = healthPanel()
    expect(await within(panel).findByText('unreachable')).toBeInTheDocument()
    expect(panel).not.toHaveTextContent('healthy')
    expect(panel).toHaveTextContent('evp is not reachable')
    expect(panel).not.toHaveTextContent('Failed to fetch')
    expect(within(panel).queryByRole('list', { name: 'Components' })).toBeNull()
  })
})
