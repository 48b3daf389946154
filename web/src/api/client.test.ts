import { afterEach, describe, expect, it, vi } from 'vitest'
import { api, ApiError, buildURL, download, explain, fileName, getHealth } from './client'
import { loadSession, saveSession } from '../lib/session'

function reply(status: number, body: unknown, headers: Record<string, string> = {}) {
  return vi.fn(async () => new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers }))
}

afterEach(() => vi.unstubAllGlobals())

describe('api', () => {
  it('unwraps the success envelope and sends the session credentials', async () => {
    const f = reply(200, { success: true, data: { n: 1 } })
    vi.stubGlobal('fetch', f)
    saveSession({ kind: 'apiKey', key: 'evp_test' })
    await expect(api('/api/metrics', { query: { a: 'x', b: undefined, c: '' } })).resolves.toEqual({ n: 1 })
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit]
    expect(url).toBe('/api/metrics?a=x')
    expect((init.headers as Record<string, string>)['x-api-key']).toBe('evp_test')
  })

  it('turns the error envelope into an ApiError with code, status and Retry-After', async () => {
    vi.stubGlobal('fetch', reply(429, { success: false, error: { code: 'RATE_LIMITED', message: 'slow down' } }, { 'Retry-After': '7' }))
    const err = await api('/api/auth/request-code', { method: 'POST', body: {}, anonymous: true }).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).toMatchObject({ status: 429, code: 'RATE_LIMITED', message: 'slow down', retryAfter: 7 })
    expect(explain(err).hint).toContain('7 s')
  })

  it('clears the session on 401 so the user signs in again', async () => {
    vi.stubGlobal('fetch', reply(401, { success: false, error: { code: 'UNAUTHORIZED', message: 'token expired' } }))
    saveSession({ kind: 'jwt', token: 'a.b.c', user: { id: '1', email: 'a@b.c', role: 'ADMIN' } })
    await expect(api('/api/users')).rejects.toMatchObject({ status: 401 })
    expect(loadSession()).toBeNull()
  })

  it('reports an unreachable evp and a non-JSON answer distinctly', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    const down = await api('/api/health').catch((e) => e)
    expect(down).toMatchObject({ status: 0, code: 'NETWORK_ERROR' })
    expect(explain(down).title).toBe('evp is not reachable')
    vi.stubGlobal('fetch', reply(502, '<html>Bad gateway</html>'))
    await expect(api('/api/health')).rejects.toMatchObject({ status: 502, code: 'HTTP_502' })
  })
})

describe('buildURL', () => {
  it('repeats a parameter given as a list and leaves empty values out', () => {
    expect(buildURL('/api/v1/events', { prop: ['metadata.page:/home', '', 'payload.n:1'], a: '', b: 2 })).toBe('/api/v1/events?prop=metadata.page%3A%2Fhome&prop=payload.n%3A1&b=2')
  })
})

describe('download', () => {
  it('sends the session token and reports an error envelope as an ApiError', async () => {
    const f = reply(503, { success: false, error: { code: 'SERVICE_UNAVAILABLE', message: 'store down' } })
    vi.stubGlobal('fetch', f)
    saveSession({ kind: 'jwt', token: 'a.b.c', user: { id: '1', email: 'a@b.c', role: 'VIEWER' } })
    await expect(download('/api/v1/events/export', { format: 'csv' }, 'events.csv')).rejects.toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' })
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit]
    expect(url).toBe('/api/v1/events/export?format=csv')
    expect((init.headers as Record<string, string>).Authorization).toBe('Bearer a.b.c')
  })
  it('says so when evp cuts the file off midway, and saves nothing', async () => {
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"eventId":"evt_1"}\n'))
        c.error(new TypeError('network error'))
      },
    })
    vi.stubGlobal('fetch', vi.fn(async () => new Response(body, { status: 200 })))
    const created = vi.fn()
    vi.stubGlobal('URL', Object.assign(class extends URL {}, { createObjectURL: created }))
    const err = await download('/api/v1/events/export', {}, 'events.ndjson').catch((e) => e)
    expect(err).toMatchObject({ code: 'DOWNLOAD_CUT_OFF' })
    expect(explain(err).title).toBe('The download stopped before its end')
    expect(created).not.toHaveBeenCalled()
  })
})

describe('fileName', () => {
  it("reads Content-Disposition's file name, filename* first, and never a path", () => {
    expect(fileName('attachment; filename="events.csv"')).toBe('events.csv')
    expect(fileName('attachment; filename=events.ndjson')).toBe('events.ndjson')
    expect(fileName(`attachment; filename="x.csv"; filename*=UTF-8''%C3%A9v%C3%A9nements.csv`)).toBe('événements.csv')
    expect(fileName('attachment; filename="../../etc/passwd"')).toBe('.._.._etc_passwd')
    expect(fileName('attachment')).toBeNull()
    expect(fileName(null)).toBeNull()
  })
})

describe('getHealth', () => {
  const body = { status: 'unhealthy', version: 'v1', uptime: 5, timestamp: '2026-01-01T00:00:00Z', services: { buffer: { status: 'down', latencyMs: 1, error: 'disk full' } } }
  it('reads the 503 answer of a backend down', async () => {
    vi.stubGlobal('fetch', reply(503, body))
    await expect(getHealth()).resolves.toMatchObject({ status: 'unhealthy' })
  })
  it('says evp is not reachable, not "Failed to fetch", when nothing answers', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    const err = await getHealth().catch((e) => e)
    expect(err).toMatchObject({ status: 0, code: 'NETWORK_ERROR' })
    expect(explain(err).title).toBe('evp is not reachable')
  })
})

describe('session', () => {
  it('forgets a JWT whose exp has passed', () => {
    const payload = btoa(JSON.stringify({ exp: Math.floor(Date.now() / 1000) - 60 })).replace(/=+$/, '')
    saveSession({ kind: 'jwt', token: `x.${payload}.y`, user: { id: '1', email: 'a@b.c', role: 'VIEWER' } })
    expect(loadSession()).toBeNull()
  })
})
