import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { saveSession } from '../lib/session'
import type { User } from '../api/types'
import { Users } from './Users'

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const ok = (data: unknown) => json(200, { success: true, data })

const admin: User = { id: 'usr_admin', email: 'admin@example.com', role: 'ADMIN', status: 'ACTIVE', createdAt: '2026-01-01T10:00:00Z', lastLoginAt: '2026-01-02T10:00:00Z' }
const sam: User = { id: 'usr_sam', email: 'sam@example.com', role: 'VIEWER', status: 'ACTIVE', createdAt: '2026-01-01T11:00:00Z' }

/** A fake evp for the user routes; calls records "METHOD path body". */
function fakeEvp(initial: User[], opts: { failPatch?: { status: number; code: string; message: string } } = {}) {
  let users = initial.map((u) => ({ ...u }))
  const calls: string[] = []
  vi.stubGlobal('fetch', vi.fn(async (url: string, init?: RequestInit) => {
    const method = init?.method ?? 'GET'
    calls.push(`${method} ${url}${init?.body ? ` ${init.body}` : ''}`)
    if (url === '/api/auth/me') return ok(admin)
    if (url === '/api/users' && method === 'GET') return ok(users)
    if (url === '/api/users' && method === 'POST') {
      const b = JSON.parse(init!.body as string)
      const u: User = { id: `usr_${users.length}`, email: b.email, role: b.role, status: 'PENDING_VERIFICATION', createdAt: '2026-01-03T10:00:00Z' }
      users = [...users, u]
      return json(201, { success: true, data: u })
    }
    const m = url.match(/^\/api\/users\/(.+)$/)
    if (m && method === 'PATCH') {
      if (opts.failPatch) return json(opts.failPatch.status, { success: false, error: { code: opts.failPatch.code, message: opts.failPatch.message } })
      users = users.map((u) => (u.id === m[1] ? { ...u, ...JSON.parse(init!.body as string) } : u))
      return ok(users.find((u) => u.id === m[1]))
    }
    return json(404, { success: false, error: { code: 'NOT_FOUND', message: 'no route' } })
  }))
  return { calls }
}

function renderPage() {
  saveSession({ kind: 'jwt', token: 'h.e.s', user: { id: admin.id, email: admin.email, role: 'ADMIN' } })
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter>
        <AuthProvider>
          <Users />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

const rowOf = (email: string) => screen.getByRole('cell', { name: new RegExp(`^${email}`) }).closest('tr') as HTMLElement

afterEach(() => vi.unstubAllGlobals())

describe('Users', () => {
  it('lists users; the signed-in admin cannot change or suspend themself', async () => {
    fakeEvp([admin, sam])
    renderPage()
    await screen.findByRole('cell', { name: /^sam@example.com/ })
    const me = rowOf('admin@example.com')
    expect(me).toHaveTextContent('you')
    expect(within(me).getByLabelText('Role of admin@example.com')).toBeDisabled()
    expect(within(me).queryByRole('button')).not.toBeInTheDocument()
    const other = rowOf('sam@example.com')
    expect(within(other).getByLabelText('Role of sam@example.com')).toHaveValue('VIEWER')
    expect(other).toHaveTextContent('active')
    expect(within(other).getByRole('button', { name: 'Suspend sam@example.com' })).toBeEnabled()
  })

  it('invites a user with a role', async () => {
    const { calls } = fakeEvp([admin])
    const user = userEvent.setup()
    renderPage()
    await screen.findByRole('cell', { name: /^admin@example.com/ })
    const invite = screen.getByRole('button', { name: 'Invite' })
    expect(invite).toBeDisabled()
    await user.type(screen.getByLabelText('Email'), ' new@example.com ')
    await user.selectOptions(screen.getByLabelText('Role'), 'OPERATOR')
    await user.click(invite)
    expect(await screen.findByRole('status')).toHaveTextContent('new@example.com can now sign in with their email.')
    expect(calls).toContain('POST /api/users {"email":"new@example.com","role":"OPERATOR"}')
    const row = await screen.findByRole('cell', { name: /^new@example.com/ })
    expect(row.closest('tr')).toHaveTextContent('pending verification')
    expect(screen.getByLabelText('Email')).toHaveValue('')
  })

  it('changes a role at once, and suspends and reactivates after confirmation', async () => {
    const { calls } = fakeEvp([admin, sam])
    const user = userEvent.setup()
    renderPage()
    await screen.findByRole('cell', { name: /^sam@example.com/ })
    await user.selectOptions(screen.getByLabelText('Role of sam@example.com'), 'OPERATOR')
    expect(calls).toContain('PATCH /api/users/usr_sam {"role":"OPERATOR"}')
    await vi.waitFor(() => expect(screen.getByLabelText('Role of sam@example.com')).toHaveValue('OPERATOR'))

    await user.click(screen.getByRole('button', { name: 'Suspend sam@example.com' }))
    const dialog = screen.getByRole('dialog', { name: 'Suspend sam@example.com?' })
    expect(dialog).toHaveTextContent('cannot sign in until reactivated')
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(calls.some((c) => c.includes('SUSPENDED'))).toBe(false)

    await user.click(screen.getByRole('button', { name: 'Suspend sam@example.com' }))
    await user.click(within(screen.getByRole('dialog', { name: 'Suspend sam@example.com?' })).getByRole('button', { name: 'Suspend' }))
    expect(calls).toContain('PATCH /api/users/usr_sam {"status":"SUSPENDED"}')
    const reactivate = await within(rowOf('sam@example.com')).findByRole('button', { name: 'Reactivate' })
    expect(rowOf('sam@example.com')).toHaveTextContent('suspended')
    await user.click(reactivate)
    expect(calls).toContain('PATCH /api/users/usr_sam {"status":"ACTIVE"}')
    expect(await within(rowOf('sam@example.com')).findByRole('button', { name: 'Suspend sam@example.com' })).toBeInTheDocument()
  })

  it('shows why evp refused a change', async () => {
    fakeEvp([admin, sam], { failPatch: { status: 409, code: 'LAST_ADMIN', message: 'this would leave no active ADMIN' } })
    const user = userEvent.setup()
    renderPage()
    await screen.findByRole('cell', { name: /^sam@example.com/ })
    await user.selectOptions(screen.getByLabelText('Role of sam@example.com'), 'ADMIN')
    expect(await screen.findByTestId('error-state')).toHaveTextContent('this would leave no active ADMIN')
  })
})
