import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter, Route, Routes, useLocation } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession } from '../lib/session'
import type { EventPage, StoredEvent } from '../api/types'
import { Events } from './Events'

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const ok = (data: unknown) => json(200, { success: true, data })

function ev(n: number, over: Partial<StoredEvent> = {}): StoredEvent {
  const t = new Date(Date.UTC(2026, 0, 1, 12, 0, 60 - n)).toISOString()
  return {
    eventId: `evt_${n}`,
    eventType: n % 2 ? 'click' : 'page_view',
    userId: `user_${n}`,
    sessionId: 'sess_1',
    timestamp: t,
    metadata: { page: '/home' },
    payload: { amount: 12.5 },
    priority: 1,
    receivedAt: t,
    processedAt: t,
    source: 'api',
    ...over,
  }
}

/**
 * fakeEvp answers GET /api/v1/events with pages (one per request, in order; the last one
 * again once they run out), records each request's URL, and answers anything else with other.
 */
function fakeEvp(pages: (EventPage | Response)[], other: (url: string, init?: RequestInit) => Response | undefined = () => undefined) {
  const urls: string[] = []
  let i = 0
  const fetch = vi.fn(async (url: string, init?: RequestInit) => {
    urls.push(url)
    const path = url.split('?')[0]
    const answer = other(url, init)
    if (answer) return answer
    if (path === '/api/v1/events') {
      const p = pages[Math.min(i++, pages.length - 1)]
      return p instanceof Response ? p.clone() : ok(p)
    }
    return json(404, { success: false, error: { code: 'NOT_FOUND', message: `no route ${path}` } })
  })
  vi.stubGlobal('fetch', fetch)
  return { urls, fetch, lists: () => urls.filter((u) => u.startsWith('/api/v1/events?')) }
}

/** Where the page's address is now, for the tests to read. */
function Address() {
  const loc = useLocation()
  return <output data-testid="address">{loc.pathname + loc.search}</output>
}

function renderPage(at = '/events') {
  saveSession({ kind: 'apiKey', key: 'evp_test' })
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter initialEntries={[at]}>
        <AuthProvider>
          <Routes>
            <Route path="/events" element={<Events />} />
          </Routes>
          <Address />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

const address = () => new URL(screen.getByTestId('address').textContent!, 'http://x')
const rows = () => within(screen.getByTestId('events')).getAllByRole('row').slice(1)

afterEach(() => {
  vi.unstubAllGlobals()
  vi.restoreAllMocks()
})

describe('Events', () => {
  it('asks with the filters of the address and those applied in the bar, and keeps them in the address', async () => {
    const { lists } = fakeEvp([{ events: [ev(1), ev(2)] }])
    const user = userEvent.setup()
    renderPage('/events?timeRange=24h&userId=user_1')
    expect(await screen.findByText('user_1')).toBeInTheDocument()
    expect(lists()[0]).toBe('/api/v1/events?timeRange=24h&userId=user_1&limit=50')
    expect(screen.getByRole('button', { name: '24 hours' })).toHaveAttribute('aria-pressed', 'true')
    expect(screen.getByLabelText('User id')).toHaveValue('user_1')
    // The list: time, type, user, source and a preview of the properties.
    const first = rows()[0]
    expect(first).toHaveTextContent('click')
    expect(first).toHaveTextContent('api')
    expect(first).toHaveTextContent('amount=12.5 · page=/home')

    await user.type(screen.getByLabelText('Event type'), 'click')
    await user.type(screen.getByLabelText('Session id'), 'sess_1')
    await user.type(screen.getByLabelText('Property'), 'metadata.page:/home{Enter}')
    await vi.waitFor(() => expect(lists()).toHaveLength(2))
    const asked = new URL(lists()[1], 'http://x')
    expect(Object.fromEntries(asked.searchParams)).toEqual({ timeRange: '24h', eventType: 'click', userId: 'user_1', sessionId: 'sess_1', prop: 'metadata.page:/home', limit: '50' })
    expect(Object.fromEntries(address().searchParams)).toEqual({ timeRange: '24h', eventType: 'click', userId: 'user_1', sessionId: 'sess_1', prop: 'metadata.page:/home' })

    await user.click(screen.getByRole('button', { name: '7 days' }))
    await vi.waitFor(() => expect(lists().at(-1)).toContain('timeRange=7d&eventType=click'))
    await user.click(screen.getByRole('button', { name: 'Clear' }))
    await vi.waitFor(() => expect(address().search).toBe('?timeRange=7d'))
    expect(screen.getByLabelText('Event type')).toHaveValue('')
  })

  it('sends a custom range from the address as from and to', async () => {
    const { lists } = fakeEvp([{ events: [ev(1)] }])
    renderPage('/events?from=2026-01-10T10:00:00Z&to=2026-01-10T11:00:00Z&eventType=signup')
    await screen.findByText('user_1')
    expect(lists()[0]).toBe('/api/v1/events?from=2026-01-10T10%3A00%3A00Z&to=2026-01-10T11%3A00%3A00Z&eventType=signup&limit=50')
    expect(screen.getByRole('button', { name: 'Custom' })).toHaveAttribute('aria-pressed', 'true')
  })

  it('refuses a property condition without FIELD.PATH:VALUE before asking evp', async () => {
    const { lists } = fakeEvp([{ events: [] }])
    const user = userEvent.setup()
    renderPage()
    await screen.findByTestId('empty-state')
    await user.type(screen.getByLabelText('Property'), 'page=/home{Enter}')
    expect(await screen.findByRole('alert')).toHaveTextContent('FIELD.PATH:VALUE')
    expect(lists()).toHaveLength(1)
  })

  it('appends the next page by cursor, and says when every event is shown', async () => {
    const { lists } = fakeEvp([
      { events: [ev(1), ev(2)], nextCursor: 'c/1+' },
      { events: [ev(3)] },
    ])
    const user = userEvent.setup()
    renderPage()
    await screen.findByText('user_2')
    expect(screen.getByRole('heading', { name: '2+ events' })).toBeInTheDocument()
    expect(screen.queryByText(/every event that matches/)).not.toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Load more' }))
    await screen.findByText('user_3')
    expect(rows().map((r) => within(r).getAllByRole('cell')[2].textContent)).toEqual(['user_1', 'user_2', 'user_3'])
    expect(lists()[1]).toBe('/api/v1/events?timeRange=1h&limit=50&cursor=c%2F1%2B')
    expect(screen.getByRole('heading', { name: '3 events' })).toBeInTheDocument()
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument()
    expect(screen.getByText(/every event that matches/)).toBeInTheDocument()
  })

  it('offers to load more, not "no events", when a page is empty but evp has more to search', async () => {
    const { lists } = fakeEvp([{ events: [], nextCursor: 'c1' }, { events: [], nextCursor: 'c2' }, { events: [ev(7)] }])
    const user = userEvent.setup()
    renderPage('/events?eventType=rare')
    expect(await screen.findByTestId('searching')).toHaveTextContent('No matching events in the part of the range searched so far')
    expect(screen.queryByTestId('empty-state')).not.toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Load more' }))
    await vi.waitFor(() => expect(lists()).toHaveLength(2))
    expect(lists()[1]).toContain('cursor=c1')
    expect(screen.getByTestId('searching')).toBeInTheDocument()
    await user.click(await screen.findByRole('button', { name: 'Load more' }))
    expect(await screen.findByText('user_7')).toBeInTheDocument()
    expect(lists()[2]).toContain('cursor=c2')
    expect(screen.queryByTestId('searching')).not.toBeInTheDocument()
  })

  it('says so when nothing matches', async () => {
    fakeEvp([{ events: [] }])
    renderPage('/events?userId=nobody')
    const empty = await screen.findByTestId('empty-state')
    expect(empty).toHaveTextContent('No events match the filters')
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument()
  })

  it("shows evp's validation error and recovers with a retry", async () => {
    const refused = json(400, { success: false, error: { code: 'VALIDATION_ERROR', message: 'prop: unknown field "meta"', details: [{ path: 'prop' }] } })
    const { lists } = fakeEvp([refused, json(503, { success: false, error: { code: 'SERVICE_UNAVAILABLE', message: 'the event store is down' } }), { events: [ev(1)] }])
    const user = userEvent.setup()
    renderPage('/events?prop=metadata.x:1')
    const err = await screen.findByTestId('error-state')
    expect(err).toHaveTextContent('prop: unknown field "meta"')
    await user.click(within(err).getByRole('button', { name: 'Try again' }))
    expect(await screen.findByTestId('error-state')).toHaveTextContent('evp is unavailable')
    await user.click(within(screen.getByTestId('error-state')).getByRole('button', { name: 'Try again' }))
    expect(await screen.findByText('user_1')).toBeInTheDocument()
    expect(screen.queryByTestId('error-state')).not.toBeInTheDocument()
    expect(lists()).toHaveLength(3)
  })

  it('opens an event in a side panel with its JSON, copies it, and closes it', async () => {
    const { urls } = fakeEvp([{ events: [ev(1, { payload: { amount: 12.5, items: [{ sku: 'A1' }] } }), ev(2)] }])
    const user = userEvent.setup()
    renderPage()
    await user.click(await screen.findByRole('button', { name: /click by user_1: show the event/ }))
    const panel = await screen.findByRole('dialog', { name: 'Event' })
    const pre = within(panel).getByTestId('event-json')
    expect(JSON.parse(pre.textContent!)).toMatchObject({ eventId: 'evt_1', payload: { items: [{ sku: 'A1' }] }, metadata: { page: '/home' } })
    expect(pre).toHaveTextContent('"sku": "A1"')
    expect(within(panel).getByRole('link', { name: 'Only this user' })).toHaveAttribute('href', '/events?userId=user_1')
    expect(address().searchParams.get('event')).toBe('evt_1')
    // The list had the event: it is not asked for again.
    expect(urls.some((u) => u.startsWith('/api/v1/events/evt_1'))).toBe(false)

    await user.click(within(panel).getByRole('button', { name: 'Copy JSON' }))
    expect(await navigator.clipboard.readText()).toBe(pre.textContent)
    expect(within(panel).getByRole('button', { name: 'Copied' })).toBeInTheDocument()

    await user.click(within(panel).getByRole('button', { name: 'Close' }))
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(address().searchParams.has('event')).toBe(false)

    // A click anywhere on a row opens it too.
    await user.click(within(rows()[1]).getByText('user_2'))
    expect(await screen.findByRole('dialog', { name: 'Event' })).toHaveTextContent('"eventId": "evt_2"')
  })

  it('asks evp for an event named in the address that the list does not hold', async () => {
    const { urls } = fakeEvp([{ events: [ev(1)] }], (url) => {
      if (url === '/api/v1/events/evt_old') return ok(ev(99, { eventId: 'evt_old', userId: 'user_old' }))
      if (url === '/api/v1/events/evt_gone') return json(404, { success: false, error: { code: 'NOT_FOUND', message: 'event not found' } })
    })
    renderPage('/events?event=evt_old')
    const panel = await screen.findByRole('dialog', { name: 'Event' })
    expect(await within(panel).findByTestId('event-json')).toHaveTextContent('"userId": "user_old"')
    expect(urls).toContain('/api/v1/events/evt_old')
  })

  it('says when the event named in the address does not exist', async () => {
    fakeEvp([{ events: [] }], (url) => (url === '/api/v1/events/evt_gone' ? json(404, { success: false, error: { code: 'NOT_FOUND', message: 'event not found' } }) : undefined))
    renderPage('/events?event=evt_gone')
    const panel = await screen.findByRole('dialog', { name: 'Event' })
    expect(await within(panel).findByText('No such event')).toBeInTheDocument()
  })

  it('exports the filtered events with the session credentials and saves the file evp names', async () => {
    const exported: { url: string; headers: Record<string, string> }[] = []
    fakeEvp([{ events: [ev(1)] }], (url, init) => {
      if (!url.startsWith('/api/v1/events/export')) return undefined
      exported.push({ url, headers: init?.headers as Record<string, string> })
      return new Response('eventId,eventType\nevt_1,click\n', { status: 200, headers: { 'Content-Type': 'text/csv', 'Content-Disposition': 'attachment; filename="events-2026.csv"' } })
    })
    const created = vi.fn((b: Blob) => `blob:${b.size}`)
    vi.stubGlobal('URL', Object.assign(class extends URL {}, { createObjectURL: created, revokeObjectURL: vi.fn() }))
    const clicked: HTMLAnchorElement[] = []
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(this)
    })
    const user = userEvent.setup()
    renderPage('/events?timeRange=24h&eventType=click&prop=payload.amount:12.5')
    await screen.findByText('user_1')
    await user.click(within(screen.getByRole('group', { name: 'Export' })).getByRole('button', { name: 'CSV' }))
    await vi.waitFor(() => expect(clicked).toHaveLength(1))
    const u = new URL(exported[0].url, 'http://x')
    expect(u.pathname).toBe('/api/v1/events/export')
    expect(Object.fromEntries(u.searchParams)).toEqual({ timeRange: '24h', eventType: 'click', prop: 'payload.amount:12.5', format: 'csv' })
    expect(exported[0].headers['x-api-key']).toBe('evp_test')
    expect(clicked[0].download).toBe('events-2026.csv')
    expect(clicked[0].getAttribute('href')).toBe(`blob:${'eventId,eventType\nevt_1,click\n'.length}`)
  })

  it('shows why an export failed', async () => {
    fakeEvp([{ events: [ev(1)] }], (url) =>
      url.startsWith('/api/v1/events/export') ? json(403, { success: false, error: { code: 'FORBIDDEN', message: 'not allowed' } }) : undefined,
    )
    const user = userEvent.setup()
    renderPage()
    await screen.findByText('user_1')
    await user.click(screen.getByRole('button', { name: 'NDJSON' }))
    expect(await screen.findByTestId('error-state')).toHaveTextContent('Not allowed')
  })
})
