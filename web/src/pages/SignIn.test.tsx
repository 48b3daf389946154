import { afterEach, describe, expect, it, vi } from 'vitest'
import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { MemoryRouter, Route, Routes } from 'react-router'
import { AuthProvider } from '../lib/auth'
import { loadSession } from '../lib/session'
import { SignIn } from './SignIn'

function renderSignIn() {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter initialEntries={['/sign-in']}>
        <AuthProvider>
          <Routes>
            <Route path="/sign-in" element={<SignIn />} />
            <Route path="/" element={<div>home page</div>} />
          </Routes>
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

afterEach(() => vi.unstubAllGlobals())

describe('SignIn', () => {
  it('asks for a code, then signs in with it and remembers the session', async () => {
    const calls: { url: string; body: unknown }[] = []
    vi.stubGlobal('fetch', vi.fn(async (url: string, init: RequestInit) => {
      calls.push({ url, body: init.body ? JSON.parse(init.body as string) : undefined })
      if (url.endsWith('/api/auth/request-code')) return json(200, { success: true, data: { message: 'sent' } })
      if (url.endsWith('/api/auth/verify')) return json(200, { success: true, data: { token: 'h.e.s', user: { id: 'u1', email: 'ops@example.com', role: 'OPERATOR' } } })
      return json(200, { success: true, data: { id: 'u1', email: 'ops@example.com', role: 'OPERATOR', status: 'ACTIVE' } })
    }))
    const user = userEvent.setup()
    renderSignIn()
    await user.type(screen.getByLabelText('Email'), 'ops@example.com')
    await user.click(screen.getByRole('button', { name: 'Send sign-in code' }))
    const code = await screen.findByLabelText('6-digit code')
    const submit = screen.getByRole('button', { name: 'Sign in' })
    expect(submit).toBeDisabled()
    await user.type(code, '12a3456')
    expect(code).toHaveValue('123456')
    await user.click(submit)
    expect(await screen.findByText('home page')).toBeInTheDocument()
    expect(calls[0]).toEqual({ url: '/api/auth/request-code', body: { email: 'ops@example.com' } })
    expect(calls[1]).toEqual({ url: '/api/auth/verify', body: { email: 'ops@example.com', code: '123456' } })
    expect(loadSession()).toMatchObject({ kind: 'jwt', token: 'h.e.s', user: { role: 'OPERATOR' } })
  })

  it('says what to do when the code is wrong', async () => {
    vi.stubGlobal('fetch', vi.fn(async (url: string) =>
      url.endsWith('/verify')
        ? json(401, { success: false, error: { code: 'INVALID_CODE', message: 'invalid code' } })
        : json(200, { success: true, data: { message: 'sent' } }),
    ))
    const user = userEvent.setup()
    renderSignIn()
    await user.type(screen.getByLabelText('Email'), 'a@example.com')
    await user.click(screen.getByRole('button', { name: 'Send sign-in code' }))
    await user.type(await screen.findByLabelText('6-digit code'), '000000')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByRole('alert')).toHaveTextContent(/wrong, expired or used up/)
    expect(loadSession()).toBeNull()
  })

  it('says that a suspended account is refused, not that its role is too low', async () => {
    vi.stubGlobal('fetch', vi.fn(async (url: string) =>
      url.endsWith('/verify')
        ? json(403, { success: false, error: { code: 'FORBIDDEN', message: 'the account is suspended or inactive; ask an ADMIN' } })
        : json(200, { success: true, data: { message: 'sent' } }),
    ))
    const user = userEvent.setup()
    renderSignIn()
    await user.type(screen.getByLabelText('Email'), 'gone@example.com')
    await user.click(screen.getByRole('button', { name: 'Send sign-in code' }))
    await user.type(await screen.findByLabelText('6-digit code'), '123456')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByRole('alert')).toHaveTextContent('This account is suspended or inactive. Ask an admin to reactivate it.')
    expect(loadSession()).toBeNull()
  })

  it('explains a 503 from an evp without mail', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json(503, { success: false, error: { code: 'SERVICE_UNAVAILABLE', message: 'mail is not configured' } })))
    const user = userEvent.setup()
    renderSignIn()
    await user.type(screen.getByLabelText('Email'), 'a@example.com')
    await user.click(screen.getByRole('button', { name: 'Send sign-in code' }))
    expect(await screen.findByRole('alert')).toHaveTextContent(/mail is not configured/)
  })
})
