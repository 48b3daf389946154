import { afterEach, describe, expect, it, vi } from 'vitest'
import { act, render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter, Route, Routes, useLocation } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession, type Session } from '../lib/session'
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

function renderPage(at = '/events', session: Session = { kind: 'apiKey', key: 'evp_test' }) {
  saveSession(session)
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  const view = render(
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
  return { ...view, qc }
}

/**
 * fakeTails answers GET /api/v1/events/live: each request opens a stream the test writes to
 * (or gets the next of answers, when given), and ends when the page aborts it.
 */
function fakeTails(answers: Response[] = []) {
  const enc = new TextEncoder()
  const tails: { url: string; headers: Record<string, string>; signal: AbortSignal; send: (s: string) => void; event: (e: object) => void; close: () => void }[] = []
  const handle = (url: string, init?: RequestInit): Response | undefined => {
    if (!url.startsWith('/api/v1/events/live')) return undefined
    const answer = answers.shift()
    let ctl!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) })
    const close = () => {
      try {
        ctl.close()
      } catch {
        // closed already
      }
    }
    const signal = init!.signal!
    signal.addEventListener('abort', close)
    const send = (s: string) => ctl.enqueue(enc.encode(s))
    tails.push({ url, headers: init?.headers as Record<string, string>, signal, send, event: (e) => send(`event: event\ndata: ${JSON.stringify(e)}\n\n`), close })
    return answer ?? new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
  }
  return { tails, handle, last: () => tails[tails.length - 1] }
}

/** A live event: as buffered, no processedAt. */
function liveEv(n: number, over: Partial<StoredEvent> = {}) {
  const e: Partial<StoredEvent> = ev(n, over)
  delete e.processedAt
  return e
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

describe('Events, Live', () => {
  const liveButton = () => screen.getByRole('button', { name: 'Live' })
  const status = () => screen.getByTestId('live-status')
  const userCells = () => rows().map((r) => within(r).getAllByRole('cell')[2].textContent)

  it('turns on with the filters, puts new events at the top marked as just received, and never twice', async () => {
    const live = fakeTails()
    fakeEvp([{ events: [ev(1), ev(2)] }], live.handle)
    const user = userEvent.setup()
    renderPage('/events?timeRange=24h&eventType=click&prop=metadata.page:/home')
    await screen.findByText('user_1')
    expect(liveButton()).toHaveAttribute('aria-pressed', 'false')
    await user.click(liveButton())
    expect(liveButton()).toHaveAttribute('aria-pressed', 'true')
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    const tail = live.last()
    const asked = new URL(tail.url, 'http://x')
    expect(asked.pathname).toBe('/api/v1/events/live')
    expect(Object.fromEntries(asked.searchParams)).toEqual({ timeRange: '24h', eventType: 'click', prop: 'metadata.page:/home' })
    expect(tail.headers['x-api-key']).toBe('evp_test')
    expect(tail.headers.Accept).toBe('text/event-stream')
    expect(screen.getByTestId('live-bar')).toHaveTextContent('Waiting for new events')

    tail.send('retry: 2000\n: live\n\n')
    tail.event(liveEv(50, { userId: 'user_new' }))
    await vi.waitFor(() => expect(userCells()).toEqual(['user_new', 'user_1', 'user_2']))
    expect(rows()[0]).toHaveAttribute('data-live', 'true')
    expect(within(rows()[0]).getByTestId('live-mark')).toHaveTextContent(/^Received live at \d\d:\d\d:\d\d/)
    expect(screen.getByTestId('live-bar')).toHaveTextContent(/Last event received at \d\d:\d\d:\d\d/)
    expect(within(rows()[1]).queryByTestId('live-mark')).not.toBeInTheDocument()

    // Two in one chunk, the newest last in the stream: the newest on top. One already listed,
    // and one already streamed, are not added again; a ping changes nothing.
    tail.send(
      `event: event\ndata: ${JSON.stringify(liveEv(51, { userId: 'user_a' }))}\n\nevent: event\ndata: ${JSON.stringify(liveEv(52, { userId: 'user_b' }))}\n\n` +
        `event: event\ndata: ${JSON.stringify(liveEv(1))}\n\nevent: event\ndata: ${JSON.stringify(liveEv(50, { userId: 'user_new' }))}\n\n: ping\n\n`,
    )
    await vi.waitFor(() => expect(userCells()).toEqual(['user_b', 'user_a', 'user_new', 'user_1', 'user_2']))
    expect(screen.getByRole('heading', { name: '5 events' })).toBeInTheDocument()

    // A live event opens in the panel, said not to be stored yet.
    await user.click(within(rows()[0]).getByRole('button'))
    const panel = await screen.findByRole('dialog', { name: 'Event' })
    expect(panel).toHaveTextContent('Not yet: just received')
    expect(address().searchParams.get('event')).toBe('evt_52')
    await user.click(within(panel).getByRole('button', { name: 'Close' }))
    expect(liveButton()).toHaveAttribute('aria-pressed', 'true')
    expect(tail.signal.aborted).toBe(false)
  })

  it('pauses: new events are counted, not shown, and resuming shows them at the top', async () => {
    const live = fakeTails()
    fakeEvp([{ events: [ev(1)] }], live.handle)
    const user = userEvent.setup()
    renderPage()
    await screen.findByText('user_1')
    await user.click(liveButton())
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    await user.click(screen.getByRole('button', { name: 'Pause' }))
    expect(status()).toHaveTextContent('Paused')
    expect(screen.getByTestId('live-waiting')).toHaveTextContent('0 new events')
    live.last().event(liveEv(60, { userId: 'user_x' }))
    await vi.waitFor(() => expect(screen.getByTestId('live-waiting')).toHaveTextContent('1 new event'))
    live.last().event(liveEv(61, { userId: 'user_y' }))
    await vi.waitFor(() => expect(screen.getByTestId('live-waiting')).toHaveTextContent('2 new events'))
    expect(userCells()).toEqual(['user_1'])
    await user.click(screen.getByRole('button', { name: 'Resume' }))
    expect(userCells()).toEqual(['user_y', 'user_x', 'user_1'])
    expect(screen.queryByTestId('live-waiting')).not.toBeInTheDocument()
    expect(status()).toHaveTextContent(/^Live$/)
    expect(screen.getByTestId('live-announcer')).toHaveTextContent('Resumed: 2 new events shown at the top')
  })

  it('announces new events politely, at most every few seconds', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    try {
      const live = fakeTails()
      fakeEvp([{ events: [] }], live.handle)
      const user = userEvent.setup()
      renderPage()
      await screen.findByTestId('empty-state')
      await user.click(liveButton())
      const announcer = screen.getByTestId('live-announcer')
      expect(announcer).toHaveAttribute('aria-live', 'polite')
      await vi.waitFor(() => expect(announcer).toHaveTextContent('Live: new events appear at the top of the list'))
      for (let i = 0; i < 3; i++) live.last().event(liveEv(70 + i))
      await vi.waitFor(() => expect(rows()).toHaveLength(3))
      // Not at each event: at the next tick, all at once.
      expect(announcer).toHaveTextContent('Live: new events appear at the top of the list')
      act(() => vi.advanceTimersByTime(5000))
      expect(announcer).toHaveTextContent('3 new events at the top of the list, 3 since Live was turned on')
      act(() => vi.advanceTimersByTime(5000))
      expect(announcer).toHaveTextContent('3 new events at the top of the list') // nothing new: unchanged
    } finally {
      vi.useRealTimers()
    }
  })

  it('shows a notice when evp drops the stream, and reconnects on demand', async () => {
    const live = fakeTails()
    fakeEvp([{ events: [ev(1)] }], live.handle)
    const user = userEvent.setup()
    renderPage()
    await screen.findByText('user_1')
    await user.click(liveButton())
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    live.last().send('event: dropped\ndata: {"reason":"this client read too slowly; reconnect to go on from now"}\n\n')
    live.last().close()
    const notice = await screen.findByTestId('live-dropped')
    expect(notice).toHaveAttribute('role', 'alert')
    expect(notice).toHaveTextContent('evp dropped this page')
    expect(notice).toHaveTextContent('This client read too slowly')
    expect(status()).toHaveTextContent('Live stopped')
    expect(live.tails).toHaveLength(1) // not again on its own
    await user.click(within(notice).getByRole('button', { name: 'Reconnect' }))
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    expect(live.tails).toHaveLength(2)
    expect(screen.queryByTestId('live-dropped')).not.toBeInTheDocument()
  })

  it('reconnects with backoff when the stream ends, saying so', async () => {
    const live = fakeTails([new Response('', { status: 503 })])
    fakeEvp([{ events: [] }], live.handle)
    const user = userEvent.setup()
    renderPage()
    await screen.findByTestId('empty-state')
    await user.click(liveButton())
    // evp answers 503 first: tried again after a second.
    await vi.waitFor(() => expect(status()).toHaveTextContent('Reconnecting (attempt 1)…'))
    expect(screen.getByTestId('live-bar')).toHaveTextContent('next try in 1 s')
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/), { timeout: 3000 })
    expect(live.tails).toHaveLength(2)
    // The stream asks for 20 ms between tries, then ends (evp stopped).
    live.last().send('retry: 20\n\n')
    live.last().close()
    await vi.waitFor(() => expect(live.tails).toHaveLength(3))
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    expect(screen.getByTestId('live-announcer')).toHaveTextContent('Live again: reconnected')
    live.last().event(liveEv(80, { userId: 'user_back' }))
    await vi.waitFor(() => expect(userCells()).toEqual(['user_back']))
  })

  it("shows evp's refusal of too many tails, with a retry", async () => {
    const refused = json(429, { success: false, error: { code: 'TOO_MANY_TAILS', message: '10 live tails are open, the most this evp serves (EVP_LIVE_TAILS_MAX); retry when one closes' } })
    const live = fakeTails([refused])
    fakeEvp([{ events: [ev(1)] }], live.handle)
    const user = userEvent.setup()
    renderPage()
    await screen.findByText('user_1')
    await user.click(liveButton())
    const err = await screen.findByTestId('error-state')
    expect(err).toHaveTextContent('Too many live views are open')
    expect(err).toHaveTextContent('10 live tails are open, the most this evp serves')
    expect(live.tails).toHaveLength(1)
    await user.click(within(err).getByRole('button', { name: 'Try again' }))
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    expect(screen.queryByTestId('error-state')).not.toBeInTheDocument()
  })

  it('turns off when the filters change, when toggled and when the page is left; the list reloads', async () => {
    const live = fakeTails()
    const { lists } = fakeEvp([{ events: [ev(1)] }], live.handle)
    const user = userEvent.setup()
    const { unmount } = renderPage('/events?timeRange=1h')
    await screen.findByText('user_1')
    await user.click(liveButton())
    await vi.waitFor(() => expect(status()).toHaveTextContent(/^Live$/))
    live.last().event(liveEv(90, { userId: 'user_live' }))
    await screen.findByText('user_live')

    await user.click(screen.getByRole('button', { name: '24 hours' }))
    expect(liveButton()).toHaveAttribute('aria-pressed', 'false')
    expect(screen.queryByTestId('live-bar')).not.toBeInTheDocument()
    expect(live.tails[0].signal.aborted).toBe(true)
    await vi.waitFor(() => expect(lists().at(-1)).toBe('/api/v1/events?timeRange=24h&limit=50'))
    expect(screen.queryByText('user_live')).not.toBeInTheDocument()
    // Back to the first filters: Live stays off.
    await user.click(screen.getByRole('button', { name: '1 hour' }))
    await vi.waitFor(() => expect(lists().at(-1)).toBe('/api/v1/events?timeRange=1h&limit=50'))
    expect(liveButton()).toHaveAttribute('aria-pressed', 'false')
    expect(live.tails).toHaveLength(1)

    // Off by the toggle: the list is asked again.
    await user.click(liveButton())
    await vi.waitFor(() => expect(live.tails).toHaveLength(2))
    const before = lists().length
    await user.click(liveButton())
    expect(live.tails[1].signal.aborted).toBe(true)
    await vi.waitFor(() => expect(lists()).toHaveLength(before + 1))

    await user.click(liveButton())
    await vi.waitFor(() => expect(live.tails).toHaveLength(3))
    unmount()
    expect(live.tails[2].signal.aborted).toBe(true)
  })
})

describe('Events, deleting a user\'s events', () => {
  const jwt = (role: 'ADMIN' | 'OPERATOR' | 'VIEWER'): Session => ({ kind: 'jwt', token: 'h.e.s', user: { id: 'usr_1', email: 'someone@example.com', role } })
  /** Answers /api/auth/me with role, DELETE of a user's events with forget (recording it), else undefined. */
  const evpAs = (role: string, forget?: (url: string) => Response) => {
    const deletes: { method?: string; url: string; headers: Record<string, string> }[] = []
    const other = (url: string, init?: RequestInit) => {
      if (url === '/api/auth/me') return ok({ id: 'usr_1', email: 'someone@example.com', role, status: 'ACTIVE' })
      if (url.startsWith('/api/v1/users/')) {
        deletes.push({ method: init?.method, url, headers: init?.headers as Record<string, string> })
        return forget ? forget(url) : json(404, { success: false, error: { code: 'NOT_FOUND', message: 'no route' } })
      }
      return undefined
    }
    return { deletes, other }
  }
  const trigger = () => screen.queryByRole('button', { name: "Delete this user's events…" })
  const openDialog = async (user: ReturnType<typeof userEvent.setup>) => {
    await user.click(trigger()!)
    return screen.findByRole('dialog', { name: 'Delete every event of this user?' })
  }

  it('is offered to an ADMIN only, and only when the list is filtered by a user', async () => {
    const viewer = evpAs('VIEWER')
    fakeEvp([{ events: [ev(1, { userId: 'u1' })] }], viewer.other)
    const first = renderPage('/events?userId=u1', jwt('VIEWER'))
    await screen.findAllByText('u1')
    expect(trigger()).not.toBeInTheDocument()
    first.unmount()

    // An API key reads like a VIEWER.
    fakeEvp([{ events: [ev(1, { userId: 'u1' })] }])
    const second = renderPage('/events?userId=u1')
    await screen.findAllByText('u1')
    expect(trigger()).not.toBeInTheDocument()
    second.unmount()

    const admin = evpAs('ADMIN')
    fakeEvp([{ events: [ev(1)] }], admin.other)
    const third = renderPage('/events', jwt('ADMIN'))
    await screen.findByText('user_1')
    expect(trigger()).not.toBeInTheDocument()
    third.unmount()

    fakeEvp([{ events: [ev(1, { userId: 'u1' })] }], admin.other)
    renderPage('/events?userId=u1', jwt('ADMIN'))
    await screen.findAllByText('u1')
    expect(trigger()).toBeInTheDocument()
    expect(trigger()).toHaveAttribute('aria-haspopup', 'dialog')
  })

  it('says what happens, enables Delete only once the id is typed exactly, and Escape cancels', async () => {
    const admin = evpAs('ADMIN')
    fakeEvp([{ events: [ev(1, { userId: 'u1' })] }], admin.other)
    const user = userEvent.setup()
    renderPage('/events?userId=u1', jwt('ADMIN'))
    await screen.findAllByText('u1')
    const dialog = await openDialog(user)
    expect(dialog).toHaveTextContent('Every stored event whose user id is exactly u1 is deleted')
    expect(dialog).toHaveTextContent('Analytics stop counting them')
    expect(dialog).toHaveTextContent('This cannot be undone')
    expect(dialog).toHaveTextContent('still being sent')
    const field = within(dialog).getByLabelText('Type the user id to confirm')
    expect(field).toHaveFocus()
    const del = within(dialog).getByRole('button', { name: 'Delete' })
    expect(del).toBeDisabled()
    await user.type(field, 'u')
    expect(del).toBeDisabled()
    await user.type(field, '12')
    expect(del).toBeDisabled()
    await user.type(field, '{Backspace}')
    expect(del).toBeEnabled()
    await user.clear(field)
    await user.type(field, 'U1')
    expect(del).toBeDisabled()
    // Enter with a wrong id sends nothing.
    await user.type(field, '{Enter}')
    expect(admin.deletes).toHaveLength(0)

    await user.keyboard('{Escape}')
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(trigger()).toHaveFocus()
    expect(admin.deletes).toHaveLength(0)
    // Opened again, the field starts empty.
    const again = await openDialog(user)
    expect(within(again).getByLabelText('Type the user id to confirm')).toHaveValue('')
    await user.click(within(again).getByRole('button', { name: 'Cancel' }))
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(admin.deletes).toHaveLength(0)
  })

  it('deletes the events of the user, says how many, reloads the list and marks the analytics stale', async () => {
    const id = 'u 1/ä?&'
    const admin = evpAs('ADMIN', () => ok({ userId: id, deleted: 1843 }))
    const { lists } = fakeEvp([{ events: [ev(1, { userId: id }), ev(2, { userId: id })] }, { events: [] }], admin.other)
    const user = userEvent.setup()
    const { qc } = renderPage(`/events?timeRange=24h&userId=${encodeURIComponent(id)}`, jwt('ADMIN'))
    await vi.waitFor(() => expect(rows()).toHaveLength(2))
    qc.setQueryData(['analytics', { timeRange: '24h' }], { totalEvents: 2 })
    const dialog = await openDialog(user)
    await user.type(within(dialog).getByLabelText('Type the user id to confirm'), id)
    await user.click(within(dialog).getByRole('button', { name: 'Delete' }))

    const status = await screen.findByTestId('forget-status')
    await vi.waitFor(() => expect(status).toHaveTextContent(`Deleted 1,843 events of ${id}.`))
    expect(status).toHaveAttribute('role', 'status')
    expect(status).toHaveAttribute('aria-live', 'polite')
    expect(admin.deletes).toHaveLength(1)
    expect(admin.deletes[0].method).toBe('DELETE')
    expect(admin.deletes[0].url).toBe('/api/v1/users/u%201%2F%C3%A4%3F%26/events')
    expect(admin.deletes[0].headers.Authorization).toBe('Bearer h.e.s')
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(trigger()).toHaveFocus()
    // The list is asked again, and is empty now.
    await vi.waitFor(() => expect(lists()).toHaveLength(2))
    expect(await screen.findByTestId('empty-state')).toHaveTextContent('No events match the filters')
    expect(qc.getQueryState(['analytics', { timeRange: '24h' }])?.isInvalidated).toBe(true)
  })

  it('says when another deletion is running, keeping the dialog open to retry', async () => {
    const busy = json(429, { success: false, error: { code: 'DELETION_RUNNING', message: 'another deletion is running; retry when it ends' } })
    busy.headers.set('Retry-After', '5')
    const admin = evpAs('ADMIN', () => busy)
    const { lists } = fakeEvp([{ events: [ev(1, { userId: 'u1' })] }], admin.other)
    const user = userEvent.setup()
    renderPage('/events?userId=u1', jwt('ADMIN'))
    await screen.findAllByText('u1')
    const dialog = await openDialog(user)
    await user.type(within(dialog).getByLabelText('Type the user id to confirm'), 'u1{Enter}')
    const err = await within(dialog).findByRole('alert')
    expect(err).toHaveTextContent('Another deletion is running')
    expect(err).toHaveTextContent('another deletion is running; retry when it ends')
    expect(err).toHaveTextContent('Retry shortly, in 5 s')
    expect(admin.deletes).toHaveLength(1)
    expect(screen.getByTestId('forget-status')).toBeEmptyDOMElement()
    expect(within(dialog).getByRole('button', { name: 'Delete' })).toBeEnabled()
    expect(lists()).toHaveLength(1)
  })

  it('says that only an ADMIN may delete when evp answers 403', async () => {
    const admin = evpAs('ADMIN', () => json(403, { success: false, error: { code: 'FORBIDDEN', message: 'this needs the role ADMIN' } }))
    fakeEvp([{ events: [ev(1, { userId: 'u1' })] }], admin.other)
    const user = userEvent.setup()
    renderPage('/events?userId=u1', jwt('ADMIN'))
    await screen.findAllByText('u1')
    const dialog = await openDialog(user)
    await user.type(within(dialog).getByLabelText('Type the user id to confirm'), 'u1')
    await user.click(within(dialog).getByRole('button', { name: 'Delete' }))
    expect(await within(dialog).findByRole('alert')).toHaveTextContent("Only an ADMIN may delete a user's events (evp: this needs the role ADMIN)")
  })
})
