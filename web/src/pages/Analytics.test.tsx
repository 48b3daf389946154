import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession } from '../lib/session'
import type { Analytics as AnalyticsData } from '../api/types'
import { Analytics } from './Analytics'

// uPlot draws on a canvas, which jsdom lacks; the chart is covered by the browser test.
vi.mock('../components/TimeChart', () => ({ TimeChart: ({ summary }: { summary: string }) => <figure>{summary}</figure> }))

const data: AnalyticsData = {
  totalEvents: 1234,
  timeRange: { start: '2026-01-01T11:00:00Z', end: '2026-01-01T12:00:00Z' },
  eventsByType: [
    { eventType: 'page_view', count: 1000, percentage: 81.04 },
    { eventType: 'purchase', count: 234, percentage: 18.96 },
  ],
  topUsers: [{ userId: 'user_42', eventCount: 70, lastEventAt: '2026-01-01T11:59:00Z', eventTypes: ['page_view', 'purchase'] }],
  eventsOverTime: [
    { timestamp: '2026-01-01T11:00:00Z', count: 1000 },
    { timestamp: '2026-01-01T11:01:00Z', count: 234 },
  ],
  avgEventsPerUser: 12.3456,
  uniqueUsers: 100,
  uniqueSessions: 150,
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

function renderPage() {
  saveSession({ kind: 'apiKey', key: 'evp_test' })
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <AuthProvider>
          <Analytics />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

afterEach(() => vi.unstubAllGlobals())

describe('Analytics', () => {
  it('shows the cards, types with percentages and top users, and asks with the chosen filters', async () => {
    const urls: string[] = []
    vi.stubGlobal('fetch', vi.fn(async (url: string) => {
      urls.push(url)
      return json(200, { success: true, data })
    }))
    const user = userEvent.setup()
    renderPage()
    expect(await screen.findByTestId('stat-Total events')).toHaveTextContent(new Intl.NumberFormat().format(1234))
    expect(screen.getByTestId('stat-Unique users')).toHaveTextContent('100')
    expect(screen.getByTestId('stat-Events per user')).toHaveTextContent('12.35')
    const types = screen.getByTestId('events-by-type')
    expect(within(types).getByText('81.0%', { exact: false })).toBeInTheDocument()
    expect(types).toHaveTextContent('234 · 19.0%')
    expect(within(screen.getByTestId('top-users')).getByText('user_42')).toBeInTheDocument()
    expect(urls[0]).toBe('/api/v1/analytics/metrics?timeRange=1h')
    // A type and a top user link to their events in the same range.
    expect(within(types).getByRole('link', { name: 'purchase' })).toHaveAttribute('href', '/events?timeRange=1h&eventType=purchase')
    expect(within(screen.getByTestId('top-users')).getByRole('link', { name: 'user_42' })).toHaveAttribute('href', '/events?timeRange=1h&userId=user_42')

    await user.click(screen.getByRole('button', { name: '7 days' }))
    await user.selectOptions(screen.getByLabelText('Event type'), 'purchase')
    await vi.waitFor(() => expect(urls.at(-1)).toBe('/api/v1/analytics/metrics?timeRange=7d&eventType=purchase'))
    expect(within(screen.getByTestId('top-users')).getByRole('link', { name: 'user_42' })).toHaveAttribute('href', '/events?timeRange=7d&eventType=purchase&userId=user_42')

    // The filter button beside a user narrows the page to them, and again back to everyone.
    await user.click(screen.getByRole('button', { name: 'Filter analytics by user_42' }))
    await vi.waitFor(() => expect(urls.at(-1)).toBe('/api/v1/analytics/metrics?timeRange=7d&eventType=purchase&userId=user_42'))
    expect(screen.getByRole('button', { name: 'Filter analytics by user_42' })).toHaveAttribute('aria-pressed', 'true')
  })

  it('says an answer that came in since the clock last ticked is just in, not in the future', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      vi.stubGlobal('fetch', vi.fn(async () => {
        vi.setSystemTime(Date.now() + 900) // the answer arrives 0.9 s after the page read the clock
        return json(200, { success: true, data })
      }))
      renderPage()
      await screen.findByTestId('stat-Total events')
      expect(screen.getByTestId('last-updated')).toHaveTextContent('Updated just now')
    } finally {
      vi.useRealTimers()
    }
  })

  it('says what to do when there are no events', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json(200, { success: true, data: { ...data, totalEvents: 0, eventsByType: [], topUsers: [], uniqueUsers: 0, uniqueSessions: 0, avgEventsPerUser: 0 } })))
    renderPage()
    const empty = await screen.findByTestId('empty-state')
    expect(empty).toHaveTextContent('No events in this range')
    expect(empty).toHaveTextContent('evp apikey create')
  })

  it('shows an error state with the reason and a retry', async () => {
    let fail = true
    vi.stubGlobal('fetch', vi.fn(async () =>
      fail ? json(500, { success: false, error: { code: 'ANALYTICS_ERROR', message: 'store down' } }) : json(200, { success: true, data }),
    ))
    const user = userEvent.setup()
    renderPage()
    const err = await screen.findByTestId('error-state')
    expect(err).toHaveTextContent('evp failed to answer')
    expect(err).toHaveTextContent('store down')
    fail = false
    await user.click(within(err).getByRole('button', { name: 'Try again' }))
    expect(await screen.findByTestId('stat-Total events')).toHaveTextContent(new Intl.NumberFormat().format(1234))
  })
})
