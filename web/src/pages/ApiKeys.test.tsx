import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession } from '../lib/session'
import type { APIKey } from '../api/types'
import { ApiKeys } from './ApiKeys'

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const ok = (data: unknown) => json(200, { success: true, data })

const older: APIKey = { id: 'key_old', name: 'old service', prefix: 'evp_OLD1', last4: 'zzzz', createdAt: '2026-01-01T10:00:00Z', ingestOnly: false }

/** A fake evp for the API-key routes; requests holds the body of each POST /api/auth/api-key. */
function fakeEvp(initial: APIKey[] = [older]) {
  let keys = initial
  const requests: Record<string, unknown>[] = []
  vi.stubGlobal('fetch', vi.fn(async (url: string, init?: RequestInit) => {
    const method = init?.method ?? 'GET'
    if (url === '/api/auth/me') return ok({ id: 'usr_1', email: 'op@example.com', role: 'OPERATOR' })
    if (url === '/api/auth/api-keys') return ok(keys)
    if (url === '/api/auth/api-key' && method === 'POST') {
      const body = JSON.parse(init!.body as string)
      requests.push(body)
      // As evp: an origin is scheme://host[:port], kept lower-cased without repeats.
      const origins: string[] | undefined = body.allowedOrigins
      const bad = origins?.find((o) => !/^https?:\/\/[^/\s]+\/?$/i.test(o))
      if (bad !== undefined) {
        const reason = `"${bad}" is not an origin such as https://shop.example or http://localhost:8080`
        return json(400, { success: false, error: { code: 'VALIDATION_ERROR', message: `allowedOrigins: ${reason}`, details: [{ path: 'allowedOrigins', reason }] } })
      }
      const key: APIKey = { id: `key_${keys.length}`, name: body.name, prefix: 'evp_NEW1', last4: 'abcd', createdAt: '2026-01-02T10:00:00Z', ingestOnly: body.ingestOnly === true }
      if (origins?.length) key.allowedOrigins = [...new Set(origins.map((o) => o.toLowerCase().replace(/\/$/, '')))]
      keys = [...keys, key]
      return ok({ apiKey: 'evp_NEW1secretsecretabcd', message: 'API key generated successfully', key })
    }
    const m = url.match(/^\/api\/auth\/api-keys\/(.+)$/)
    if (m && method === 'DELETE') {
      keys = keys.map((k) => (k.id === m[1] ? { ...k, revokedAt: '2026-01-02T11:00:00Z' } : k))
      return ok({ id: m[1], revokedAt: '2026-01-02T11:00:00Z' })
    }
    return json(404, { success: false, error: { code: 'NOT_FOUND', message: 'no route' } })
  }))
  return { requests }
}

function renderPage() {
  saveSession({ kind: 'jwt', token: 'h.e.s', user: { id: 'usr_1', email: 'op@example.com', role: 'OPERATOR' } })
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <AuthProvider>
          <ApiKeys />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

async function revoke(user: ReturnType<typeof userEvent.setup>, name: string) {
  await user.click(await screen.findByRole('button', { name: `Revoke ${name}` }))
  await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Revoke key' }))
  const row = screen.getByRole('cell', { name }).closest('tr') as HTMLElement
  await within(row).findByText('revoked')
}

afterEach(() => vi.unstubAllGlobals())

describe('ApiKeys', () => {
  it('shows a new key once, keeps showing it when another key is revoked, and hides it once it is revoked itself', async () => {
    fakeEvp()
    const user = userEvent.setup()
    renderPage()
    await user.type(await screen.findByLabelText('Name'), 'checkout')
    await user.click(screen.getByRole('button', { name: 'Create key' }))
    expect(await screen.findByTestId('new-key-value')).toHaveTextContent('evp_NEW1secretsecretabcd')

    await revoke(user, 'old service')
    expect(screen.getByTestId('new-key-value')).toHaveTextContent('evp_NEW1secretsecretabcd')

    await revoke(user, 'checkout')
    expect(screen.queryByTestId('new-key')).toBeNull()
    expect(screen.queryByText(/evp_NEW1secret/)).toBeNull()
  })

  it('sends ingestOnly: true when "Ingest only" is ticked, says what the new key may do, and unticks it afterwards', async () => {
    const { requests } = fakeEvp()
    const user = userEvent.setup()
    renderPage()
    await user.type(await screen.findByLabelText('Name'), 'web page')
    const box = screen.getByRole('checkbox', { name: 'Ingest only' })
    expect(box).not.toBeChecked()
    expect(box).toHaveAccessibleDescription(/May only send events/)
    await user.click(box)
    await user.click(screen.getByRole('button', { name: 'Create key' }))
    expect(await screen.findByTestId('new-key')).toHaveTextContent(/ingest-only: it may only send events/)
    expect(requests).toEqual([{ name: 'web page', ingestOnly: true }])
    expect(screen.getByRole('checkbox', { name: 'Ingest only' })).not.toBeChecked()

    // Unticked, the next key is not ingest-only, and the new-key box does not say it is.
    await user.type(screen.getByLabelText('Name'), 'backend')
    await user.click(screen.getByRole('button', { name: 'Create key' }))
    await screen.findByRole('cell', { name: 'backend' })
    expect(requests[1]).toEqual({ name: 'backend', ingestOnly: false })
    expect(screen.getByTestId('new-key')).not.toHaveTextContent(/ingest-only/)
  })

  it('shows each key\'s access: "Ingest only" for an ingest-only key, "Ingest + read" for the others', async () => {
    fakeEvp([older, { id: 'key_web', name: 'web page', prefix: 'evp_WEB1', last4: 'wwww', createdAt: '2026-01-03T10:00:00Z', ingestOnly: true }])
    renderPage()
    const row = (name: string) => screen.getByRole('cell', { name }).closest('tr') as HTMLElement
    await screen.findByRole('cell', { name: 'web page' })
    expect(within(row('web page')).getByText('Ingest only')).toBeInTheDocument()
    expect(within(row('web page')).queryByText('Ingest + read')).toBeNull()
    expect(within(row('old service')).getByText('Ingest + read')).toBeInTheDocument()
    expect(within(row('old service')).queryByText('Ingest only')).toBeNull()
  })

  it('sends the allowed origins typed one per line or separated by spaces or commas, lists them, and empties the field afterwards', async () => {
    const { requests } = fakeEvp()
    const user = userEvent.setup()
    renderPage()
    await user.type(await screen.findByLabelText('Name'), 'shop')
    await user.click(screen.getByRole('checkbox', { name: 'Ingest only' }))
    const field = screen.getByRole('textbox', { name: 'Allowed origins' })
    expect(field).toHaveAccessibleDescription(/Browsers on other origins may not send events.*servers and apps are not limited.*Empty: any origin/)
    await user.type(field, 'https://Shop.example{Enter}  http://localhost:8080, https://cdn.example ,,{Enter}')
    await user.click(screen.getByRole('button', { name: 'Create key' }))
    await screen.findByRole('cell', { name: 'shop' })
    expect(requests).toEqual([{ name: 'shop', ingestOnly: true, allowedOrigins: ['https://Shop.example', 'http://localhost:8080', 'https://cdn.example'] }])
    const row = screen.getByRole('cell', { name: 'shop' }).closest('tr') as HTMLElement
    const listed = within(row).getByRole('list', { name: 'Origins' })
    expect(within(listed).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['https://shop.example', 'http://localhost:8080', 'https://cdn.example'])
    expect(within(row).queryByText('Any origin')).toBeNull()
    expect(screen.getByRole('textbox', { name: 'Allowed origins' })).toHaveValue('')

    // Left empty, the next request names no origins (any origin).
    await user.type(screen.getByLabelText('Name'), 'backend')
    await user.click(screen.getByRole('button', { name: 'Create key' }))
    await screen.findByRole('cell', { name: 'backend' })
    expect(requests[1]).toEqual({ name: 'backend', ingestOnly: false })
  })

  it('shows evp\'s 400 about a malformed origin next to the form and keeps what was typed', async () => {
    const { requests } = fakeEvp()
    const user = userEvent.setup()
    renderPage()
    await user.type(await screen.findByLabelText('Name'), 'shop')
    const field = screen.getByRole('textbox', { name: 'Allowed origins' })
    await user.type(field, 'https://shop.example/checkout')
    await user.click(screen.getByRole('button', { name: 'Create key' }))
    expect(await screen.findByRole('alert')).toHaveTextContent(/allowedOrigins: "https:\/\/shop\.example\/checkout" is not an origin/)
    expect(requests).toEqual([{ name: 'shop', ingestOnly: false, allowedOrigins: ['https://shop.example/checkout'] }])
    expect(field).toHaveValue('https://shop.example/checkout')
    expect(field).toHaveAttribute('aria-invalid', 'true')
    expect(screen.queryByTestId('new-key')).toBeNull()
  })

  it('shows the origins of each key: its list, or "Any origin" when it names none', async () => {
    fakeEvp([
      older,
      { id: 'key_web', name: 'web page', prefix: 'evp_WEB1', last4: 'wwww', createdAt: '2026-01-03T10:00:00Z', ingestOnly: true, allowedOrigins: ['https://shop.example', 'http://localhost:8080'] },
      { id: 'key_app', name: 'app', prefix: 'evp_APP1', last4: 'aaaa', createdAt: '2026-01-04T10:00:00Z', ingestOnly: true, allowedOrigins: [] },
    ])
    renderPage()
    const row = (name: string) => screen.getByRole('cell', { name }).closest('tr') as HTMLElement
    await screen.findByRole('cell', { name: 'web page' })
    const web = within(row('web page'))
    expect(web.getByText('https://shop.example')).toBeInTheDocument()
    expect(web.getByText('http://localhost:8080')).toBeInTheDocument()
    expect(web.queryByText('Any origin')).toBeNull()
    expect(within(row('old service')).getByText('Any origin')).toBeInTheDocument()
    expect(within(row('old service')).queryByRole('list')).toBeNull()
    expect(within(row('app')).getByText('Any origin')).toBeInTheDocument()
  })
})
