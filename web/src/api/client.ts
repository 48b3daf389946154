// The dashboard's HTTP client: one fetch wrapper that adds the session's credentials, unwraps
// evp's envelope ({success, data} / {success, error}) and turns every failure into an ApiError.
import { clearSession, loadSession } from '../lib/session'
import type { components } from './schema'
import type { Health } from './types'

/** The answer of DELETE /api/v1/users/{userId}/events: whose events, and how many were deleted. */
export type UserEventsDeleted = components['schemas']['UserEventsDeleted']

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

/** Query parameters; an array is a repeated parameter (prop=a&prop=b). Empty values are left out. */
export type Query = Record<string, string | number | undefined | null | readonly string[]>

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
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== undefined && one !== null && one !== '') params.append(k, String(one))
    }
  }
  const qs = params.toString()
  return apiBase + path + (qs ? `?${qs}` : '')
}

/** credentials adds the session's credentials to headers; returns whether there were any. */
function credentials(headers: Record<string, string>, anonymous?: boolean): boolean {
  const session = anonymous ? null : loadSession()
  if (session?.kind === 'jwt') headers.Authorization = `Bearer ${session.token}`
  if (session?.kind === 'apiKey') headers['x-api-key'] = session.key
  return session !== null
}

/** api calls evp and returns the envelope's data, or throws ApiError. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  const signedIn = credentials(headers, opts.anonymous)
  let body: string | undefined
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(opts.body)
  }
  const res = await send(buildURL(path, opts.query), { method: opts.method ?? 'GET', headers, body, signal: opts.signal })
  return unwrap<T>(res, signedIn && !opts.anonymous)
}

/** unwrap reads evp's envelope from res: its data, or an ApiError (a 401 ends the session). */
async function unwrap<T>(res: Response, signedIn: boolean): Promise<T> {
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
  if (res.status === 401 && signedIn) {
    // The session is no longer accepted: sign in again.
    clearSession('expired')
  }
  throw err
}

/**
 * download fetches a file from evp with the session's credentials (a plain link could not send
 * them) and saves it under the name its Content-Disposition gives, or fallbackName. It holds the
 * whole file in memory until the browser has it. Errors are ApiErrors, as from api.
 */
export async function download(path: string, query: Query, fallbackName: string, signal?: AbortSignal): Promise<string> {
  const headers: Record<string, string> = {}
  const signedIn = credentials(headers)
  const res = await send(buildURL(path, query), { headers, signal })
  if (!res.ok) return unwrap<never>(res, signedIn)
  const name = fileName(res.headers.get('Content-Disposition')) ?? fallbackName
  let blob: Blob
  try {
    blob = await res.blob()
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err
    // evp cuts a download off when it fails midway, so that a part is never taken for the whole.
    throw new ApiError(res.status, 'DOWNLOAD_CUT_OFF', 'evp failed while reading, or the connection dropped, so nothing was saved. Try again.')
  }
  const url = URL.createObjectURL(blob)
  try {
    const a = document.createElement('a')
    a.href = url
    a.download = name
    a.style.display = 'none'
    document.body.append(a)
    a.click()
    a.remove()
  } finally {
    // The click hands the file to the browser; some browsers read the URL a little later.
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
  }
  return name
}

/**
 * openStream asks evp for a stream (server-sent events) with the session's credentials, which
 * an EventSource could not send, and returns the response once evp has answered 200, its body
 * to be read until signal aborts. Any other answer is an ApiError, as from api (a 401 ends
 * the session).
 */
export async function openStream(path: string, query: Query, signal: AbortSignal): Promise<Response & { body: ReadableStream<Uint8Array> }> {
  const headers: Record<string, string> = { Accept: 'text/event-stream' }
  const signedIn = credentials(headers)
  const res = await send(buildURL(path, query), { headers, signal, cache: 'no-store' })
  if (!res.ok) return unwrap<never>(res, signedIn)
  if (!res.body) throw new ApiError(res.status, 'BAD_RESPONSE', 'evp answered without a stream')
  return res as Response & { body: ReadableStream<Uint8Array> }
}

/** fileName reads the file name of a Content-Disposition header (filename* first), or null. */
export function fileName(disposition: string | null): string | null {
  if (!disposition) return null
  let name: string | undefined
  const star = disposition.match(/filename\*\s*=\s*UTF-8''([^;]+)/i)
  if (star) {
    try {
      name = decodeURIComponent(star[1].trim())
    } catch {
      // malformed: the plain name below
    }
  }
  if (!name) {
    const plain = disposition.match(/filename\s*=\s*(?:"([^"]*)"|([^;]+))/i)
    name = (plain?.[1] ?? plain?.[2])?.trim()
  }
  // A name, not a path.
  return name ? name.replace(/[/\\]/g, '_') : null
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

/**
 * forgetUserEvents deletes every stored event of userId, exactly as the events carry it
 * (DELETE /api/v1/users/{userId}/events, an erasure request; an ADMIN's session only). The id
 * travels encoded in the path; "." and ".." cannot (a URL resolves them as path steps, which
 * would name another route), so they are refused here without asking evp.
 */
export function forgetUserEvents(userId: string, signal?: AbortSignal): Promise<UserEventsDeleted> {
  if (userId === '.' || userId === '..') {
    return Promise.reject(new ApiError(400, 'VALIDATION_ERROR', `The user id "${userId}" cannot be named in an address, so the dashboard cannot delete its events`))
  }
  return api<UserEventsDeleted>(`/api/v1/users/${encodeURIComponent(userId)}/events`, { method: 'DELETE', signal })
}

/** What to tell a person about an error: what happened and what to do. */
export function explain(err: unknown): { title: string; hint: string } {
  if (!(err instanceof ApiError)) {
    return { title: 'Something went wrong', hint: err instanceof Error ? err.message : String(err) }
  }
  switch (true) {
    case err.code === 'DOWNLOAD_CUT_OFF':
      return { title: 'The download stopped before its end', hint: err.message }
    case err.status === 0:
      return { title: 'evp is not reachable', hint: 'Check that evp is running (make run) and that this page points at it.' }
    case err.status === 401:
      return { title: 'Not signed in', hint: 'Your session has expired or was revoked. Sign in again.' }
    case err.status === 403:
      return { title: 'Not allowed', hint: 'Your role does not allow this. Ask an admin for a higher role.' }
    case err.status === 404 && err.code === 'NOT_FOUND':
      return { title: 'This evp does not offer this yet', hint: `${err.message}. Update evp to a version that has this route.` }
    case err.code === 'TOO_MANY_TAILS':
      return { title: 'Too many live views are open', hint: `${err.message}.` }
    case err.code === 'DELETION_RUNNING':
      return { title: 'Another deletion is running', hint: `Nothing was deleted this time (evp: ${err.message}). Retry shortly${err.retryAfter ? `, in ${err.retryAfter} s` : ''}.` }
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
