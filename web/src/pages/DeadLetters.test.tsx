import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession } from '../lib/session'
import type { DeadLetter } from '../api/types'
import { DeadLetters } from './DeadLetters'

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const ok = (data: unknown) => json(200, { success: true, data })

const poisoned: DeadLetter = {
  id: '7',
  eventId: 'evt_poison',
  error: 'sqlitestore: insert 1 events: poisoned event refused',
  attempts: 3,
  failedAt: '2026-01-01T12:00:00Z',
  replayable: true,
  event: { eventId: 'evt_poison', eventType: 'purchase', userId: 'user_9', sessionId: 's1', timestamp: '2026-01-01T11:59:00Z', payload: { cart: 42 }, priority: 0, receivedAt: '2026-01-01T11:59:01Z' },
}
const junk: DeadLetter = { id: '8', eventId: null, error: 'undecodable buffer entry', attempts: 1, failedAt: '2026-01-01T12:01:00Z', replayable: false, raw: '\ufffd{' }

/**
 * A fake evp for the dead-letter routes: letters holds the queue, calls records each request
 * as "METHOD path".
 */
function fakeEvp(initial: DeadLetter[]) {
  let letters = [...initial]
  const calls: string[] = []
  const fetch = vi.fn(async (url: string, init?: RequestInit) => {
    const method = init?.method ?? 'GET'
    const path = url.split('?')[0]
    calls.push(`${method} ${path}`)
    if (path === '/api/auth/me') return ok({ id: 'usr_ops', email: 'ops@example.com', role: 'OPERATOR', status: 'ACTIVE' })
    if (path === '/api/v1/dead-letters' && method === 'GET') return ok({ items: letters, nextCursor: null, total: letters.length })
    if (path === '/api/v1/dead-letters/replay' && method === 'POST') {
      const replayed = letters.filter((d) => d.replayable).length
      letters = letters.filter((d) => !d.replayable)
      return ok({ replayed, skipped: letters.length })
    }
    const m = path.match(/^\/api\/v1\/dead-letters\/([^/]+)(\/replay)?$/)
    const d = m && letters.find((l) => l.id === decodeURIComponent(m[1]))
    if (!d) return json(404, { success: false, error: { code: 'NOT_FOUND', message: 'no such dead letter' } })
    if (m[2] && method === 'POST') {
      letters = letters.filter((l) => l !== d)
      return ok({ id: d.id, eventId: d.eventId, replayed: true })
    }
    if (method === 'DELETE') {
      letters = letters.filter((l) => l !== d)
      return ok({ id: d.id, deleted: true })
    }
    return ok(d)
  })
  vi.stubGlobal('fetch', fetch)
  return { calls }
}

function renderPage() {
  saveSession({ kind: 'jwt', token: 'h.e.s', user: { id: 'usr_ops', email: 'ops@example.com', role: 'OPERATOR' } })
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <AuthProvider>
          <DeadLetters />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

/** The detail panel: the section headed "Dead letter". */
const detail = async () => (await screen.findByRole('heading', { name: 'Dead letter', level: 2 })).closest('section') as HTMLElement

afterEach(() => vi.unstubAllGlobals())

describe('DeadLetters', () => {
  it('lists letters with their error, shows one with its event, and replays it', async () => {
    const { calls } = fakeEvp([poisoned, junk])
    const user = userEvent.setup()
    renderPage()
    expect(await screen.findByRole('heading', { name: '2 dead letters' })).toBeInTheDocument()
    const items = screen.getAllByRole('listitem')
    expect(items[0]).toHaveTextContent('evt_poison')
    expect(items[0]).toHaveTextContent('3 attempts')
    expect(items[0]).toHaveTextContent('purchase · user_9')
    expect(items[0]).toHaveTextContent('poisoned event refused')
    expect(items[1]).toHaveTextContent('undecodable event')

    await user.click(within(items[0]).getByRole('button'))
    const panel = await detail()
    await within(panel).findByText('sqlitestore: insert 1 events: poisoned event refused')
    expect(panel).toHaveTextContent('"userId": "user_9"')
    expect(panel).toHaveTextContent('"cart": 42')
    await user.click(within(panel).getByRole('button', { name: 'Replay' }))
    expect(await screen.findByRole('heading', { name: '1 dead letter' })).toBeInTheDocument()
    expect(screen.queryByRole('heading', { name: 'Dead letter', level: 2 })).not.toBeInTheDocument()
    expect(calls).toContain('POST /api/v1/dead-letters/7/replay')
    // The replayed letter is gone: it is not asked for again (evp would answer 404).
    expect(calls.filter((c) => c === 'GET /api/v1/dead-letters/7')).toHaveLength(1)
  })

  it('deletes a letter only after confirmation', async () => {
    const { calls } = fakeEvp([poisoned])
    const user = userEvent.setup()
    renderPage()
    await user.click(await screen.findByRole('button', { name: /evt_poison/ }))
    const panel = await detail()
    await within(panel).findByText(/poisoned event refused/)
    await user.click(within(panel).getByRole('button', { name: 'Delete' }))
    const dialog = screen.getByRole('dialog', { name: 'Delete this dead letter?' })
    expect(dialog).toHaveTextContent('dropped for good')
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(calls.some((c) => c.startsWith('DELETE'))).toBe(false)

    await user.click(within(panel).getByRole('button', { name: 'Delete' }))
    await user.click(within(screen.getByRole('dialog', { name: 'Delete this dead letter?' })).getByRole('button', { name: 'Delete' }))
    expect(await screen.findByTestId('empty-state')).toHaveTextContent('No dead letters')
    expect(calls).toContain('DELETE /api/v1/dead-letters/7')
  })

  it('shows the raw body of an undecodable letter and does not offer to replay it', async () => {
    fakeEvp([junk])
    const user = userEvent.setup()
    renderPage()
    await user.click(await screen.findByRole('button', { name: /undecodable/ }))
    const panel = await detail()
    expect(await within(panel).findByRole('heading', { name: 'Raw body' })).toBeInTheDocument()
    expect(within(panel).getByRole('button', { name: 'Replay' })).toBeDisabled()
    expect(panel).toHaveTextContent('cannot be replayed')
  })

  it('replays every letter after confirmation and says how many stayed', async () => {
    const { calls } = fakeEvp([poisoned, junk])
    const user = userEvent.setup()
    renderPage()
    await user.click(await screen.findByRole('button', { name: 'Replay all' }))
    const dialog = screen.getByRole('dialog', { name: 'Replay every dead letter?' })
    await user.click(within(dialog).getByRole('button', { name: 'Replay all' }))
    expect(await screen.findByText(/Replayed 1 event; 1 could not be decoded and stayed/)).toBeInTheDocument()
    expect(calls).toContain('POST /api/v1/dead-letters/replay')
    expect(await screen.findByRole('heading', { name: '1 dead letter' })).toBeInTheDocument()
  })

  it('says so when the queue is empty', async () => {
    fakeEvp([])
    renderPage()
    expect(await screen.findByTestId('empty-state')).toHaveTextContent('No dead letters')
    expect(screen.queryByRole('button', { name: 'Replay all' })).not.toBeInTheDocument()
  })
})
