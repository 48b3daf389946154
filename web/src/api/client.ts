// The dashboard's HTTP client: one fetch wrapper that adds the session's credentials, unwraps
// evp's envelope ({success, data} / {success, error}) and turns every failure into an ApiError.
import { clearSession, loadSession } from '../lib/session'
import type { Health } from './types'

/** Where the API lives: the dashboard's own origin unless VITE_API_URL says otherwise. */
export const apiBase = (import.meta.env.VITE_API_URL ?? '').replace(/\/+$/, '')

export class ApiError extends Error {
  /** HTTP status; 0 when evp could not be reached. */
  readonly status: number
  /** evp's error code (VALIDATION_ERROR...), NETWORK_ERROR or BAD_RESPONSE. */
  readonly code: string
  readonly details?: unknown
  readonly retryAfter?: number

  constructor(status: number, code: string, message: string, details?: unknown, retryAfter?: number) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
    this.retryAfter = retryAfter
  }
}

export type Query = Record<string, string | number | undefined | null>

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  query?: Query
  body?: unknown
  signal?: AbortSignal
  /** Send no credentials (sign-in routes). */
  anonymous?: boolean
}

export function buildURL(path: string, query?: Query): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v))
  }
  const qs = params.toString()
  return apiBase + path + (qs ? `?${qs}` : '')
}

/** api calls evp and returns the envelope's data, or throws ApiError. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  const session = opts.anonymous ? null : loadSession()
  if (session?.kind === 'jwt') headers.Authorization = `Bearer ${session.token}`
  if (session?.kind === 'apiKey') headers['x-api-key'] = session.key
  let body: string | undefined
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(opts.body)
  }
  const res = await send(buildURL(path, opts.query), { method: opts.method ?? 'GET', headers, body, signal: opts.signal })
  const text = await res.text()
  let parsed: unknown = undefined
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    // not JSON: handled below
  }
  const env = parsed as { success?: boolean; data?: T; error?: { code?: string; message?: string; details?: unknown } } | undefined
  if (res.ok && env && env.success !== false) return env.data as T
  const retry = Number(res.headers.get('Retry-After')) || undefined
  const e = env?.error
  const err = e?.code
    ? new ApiError(res.status, e.code, e.message ?? res.statusText, e.details, retry)
    : new ApiError(res.status, res.ok ? 'BAD_RESPONSE' : `HTTP_${res.status}`, `evp answered ${res.status} ${res.statusText || ''} without the usual JSON envelope`.trim(), undefined, retry)
  if (res.status === 401 && session && !opts.anonymous) {
    // The session is no longer accepted: sign in again.
    clearSession('expired')
  }
  throw err
}

/** send is fetch with a failure to reach evp turned into an ApiError with status 0. */
async function send(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init)
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err
    throw new ApiError(0, 'NETWORK_ERROR', `evp did not answer (${apiBase || window.location.origin}). Is it running?`)
  }
}

/**
 * getHealth reads GET /api/health, which answers a bare object (no envelope) and needs no
 * credentials; its 503 (a backend down) carries the same object and is read too.
 */
export async function getHealth(signal?: AbortSignal): Promise<Health> {
  const res = await send(buildURL('/api/health'), { headers: { Accept: 'application/json' }, signal })
  if (!res.ok && res.status !== 503) throw new ApiError(res.status, `HTTP_${res.status}`, `evp's health check answered ${res.status}`)
  try {
    return (await res.json()) as Health
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', `evp's health check answered ${res.status} without JSON`)
  }
}

/** What to tell a person about an error: what happened and what to do. */
export function explain(err: unknown): { title: string; hint: string } {
  if (!(err instanceof ApiError)) {
    return { title: 'Something went wrong', hint: err instanceof Error ? err.message : String(err) }
  }
  switch (true) {
    case err.status === 0:
      return { title: 'evp is not reachable', hint: 'Check that evp is running (make run) and that this page points at it.' }
    case err.status === 401:
      return { title: 'Not signed in', hint: 'Your session has expired or was revoked. Sign in again.' }
    case err.status === 403:
      return { title: 'Not allowed', hint: 'Your role does not allow this. Ask an admin for a higher role.' }
    case err.status === 404 && err.code === 'NOT_FOUND':
      return { title: 'This evp does not offer this yet', hint: `${err.message}. Update evp to a version that has this route.` }
    case err.status === 429:
      return { title: 'Too many requests', hint: `Wait${err.retryAfter ? ` ${err.retryAfter} s` : ' a moment'} and try again.` }
    case err.status === 503:
      return { title: 'evp is unavailable', hint: `${err.message}. It usually recovers on its own; retry shortly.` }
    case err.status >= 500:
      return { title: 'evp failed to answer', hint: `${err.message} (${err.code}). Check evp's log; retrying may help.` }
    default:
      return { title: err.message, hint: err.code }
  }
}
