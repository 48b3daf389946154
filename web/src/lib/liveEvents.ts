// The Events page's Live mode: a tail of GET /api/v1/events/live (server-sent events, read
// with fetch), the events it brings, pausing, and reconnecting when the stream ends.
import { useEffect, useReducer } from 'react'
import { ApiError, buildURL, openStream, type Query } from '../api/client'
import type { LiveEvent } from '../api/types'
import { readSSE, SSEParser, type SSEMessage } from './sse'

const PATH = '/api/v1/events/live'
/** MAX_LIVE is how many live events are kept, shown and waiting each (the newest). */
export const MAX_LIVE = 500
/** How often at most the screen reader is told how many events arrived. */
export const ANNOUNCE_MS = 5000
/** A stream silent for this long (evp pings every 15 s) is taken for lost. */
const IDLE_MS = 45_000
const BACKOFF_MAX_MS = 30_000

/** A live event and when it reached the page (ms since the epoch). */
export interface LiveRow {
  event: LiveEvent
  arrivedAt: number
}

export type LiveStatus =
  | { kind: 'connecting' }
  | { kind: 'live' }
  /** The stream ended or could not be opened; the next try is in delay ms. */
  | { kind: 'reconnecting'; attempt: number; delay: number; error?: unknown }
  /** evp dropped this client for reading too slowly. */
  | { kind: 'dropped'; reason: string }
  /** evp refused the tail (too many tails, not allowed, bad filters): tried again by hand only. */
  | { kind: 'failed'; error: unknown }

interface State {
  /** The tail's address (the filters), null when Live is off. */
  key: string | null
  query: Query | null
  /** Changes at each start and retry by hand: a new connection. */
  session: number
  status: LiveStatus
  paused: boolean
  /** Shown, newest first. */
  rows: LiveRow[]
  /** Received while paused, newest first. */
  waiting: LiveRow[]
  /** How many arrived while paused (more than waiting holds when over MAX_LIVE). */
  waitingCount: number
  lastAt: number | null
  total: number
  unannounced: number
  announcement: string
  connectedOnce: boolean
}

type Action =
  | { type: 'start'; key: string; query: Query }
  | { type: 'stop' }
  | { type: 'retry' }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'connected' }
  | { type: 'events'; events: LiveEvent[]; at: number }
  | { type: 'reconnecting'; attempt: number; delay: number; error?: unknown }
  | { type: 'dropped'; reason: string }
  | { type: 'failed'; error: unknown }
  | { type: 'announce' }

const off: State = {
  key: null,
  query: null,
  session: 0,
  status: { kind: 'connecting' },
  paused: false,
  rows: [],
  waiting: [],
  waitingCount: 0,
  lastAt: null,
  total: 0,
  unannounced: 0,
  announcement: '',
  connectedOnce: false,
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`

/** newEvents says "12 new events". */
export const newEvents = (n: number) => plural(n, 'new event')

function reducer(s: State, a: Action): State {
  switch (a.type) {
    case 'start':
      return { ...off, key: a.key, query: a.query, session: s.session + 1, announcement: 'Live on: connecting' }
    case 'stop':
      return { ...off, session: s.session }
    case 'retry':
      return { ...s, session: s.session + 1, status: { kind: 'connecting' }, announcement: 'Connecting again' }
    case 'pause':
      return { ...s, paused: true, announcement: 'Paused: new events are counted, not shown' }
    case 'resume':
      return {
        ...s,
        paused: false,
        rows: [...s.waiting, ...s.rows].slice(0, MAX_LIVE),
        waiting: [],
        waitingCount: 0,
        unannounced: 0,
        announcement: `Resumed: ${s.waitingCount === 0 ? 'no new events' : `${newEvents(s.waitingCount)} shown at the top`}`,
      }
    case 'connected':
      return {
        ...s,
        status: { kind: 'live' },
        connectedOnce: true,
        announcement: s.connectedOnce ? 'Live again: reconnected' : 'Live: new events appear at the top of the list',
      }
    case 'events': {
      const seen = new Set<string>()
      for (const r of s.rows) seen.add(r.event.eventId)
      for (const r of s.waiting) seen.add(r.event.eventId)
      const fresh: LiveRow[] = []
      // The stream sends the oldest first; the list shows the newest first.
      for (let i = a.events.length - 1; i >= 0; i--) {
        const e = a.events[i]
        if (seen.has(e.eventId)) continue
        seen.add(e.eventId)
        fresh.push({ event: e, arrivedAt: a.at })
      }
      if (fresh.length === 0) return s
      const more = { lastAt: a.at, total: s.total + fresh.length, unannounced: s.unannounced + fresh.length }
      if (s.paused) return { ...s, ...more, waiting: [...fresh, ...s.waiting].slice(0, MAX_LIVE), waitingCount: s.waitingCount + fresh.length }
      return { ...s, ...more, rows: [...fresh, ...s.rows].slice(0, MAX_LIVE) }
    }
    case 'reconnecting':
      return {
        ...s,
        status: { kind: 'reconnecting', attempt: a.attempt, delay: a.delay, error: a.error },
        // Said once per loss, not at every attempt.
        announcement: s.status.kind === 'reconnecting' ? s.announcement : 'Live connection lost: reconnecting',
      }
    case 'dropped':
      return { ...s, status: { kind: 'dropped', reason: a.reason } }
    case 'failed':
      return { ...s, status: { kind: 'failed', error: a.error } }
    case 'announce':
      if (s.unannounced === 0) return s
      return {
        ...s,
        unannounced: 0,
        announcement: s.paused ? `Paused: ${newEvents(s.waitingCount)} waiting` : `${newEvents(s.unannounced)} at the top of the list, ${s.total} since Live was turned on`,
      }
  }
}

/** retryable says whether a failure to open the tail is worth trying again on its own. */
function retryable(err: unknown): boolean {
  if (!(err instanceof ApiError)) return true // the stream broke off
  return err.status === 0 || err.status === 408 || err.status >= 500
}

/** backoff is the wait before reconnection attempt n (1, 2...): base doubled each time, 30 s at most. */
export function backoff(attempt: number, base = 1000): number {
  return Math.min(BACKOFF_MAX_MS, base * 2 ** Math.max(0, attempt - 1))
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}

/**
 * follow keeps a tail of the live route open for query until signal aborts: it reconnects
 * with backoff when the stream ends, breaks off or cannot be reached, and stops for good when
 * evp drops this client (it read too slowly) or refuses the tail.
 */
async function follow(query: Query, signal: AbortSignal, dispatch: (a: Action) => void): Promise<void> {
  let attempt = 0
  let base = 1000
  while (!signal.aborted) {
    // One connection: aborted with the tail, or when it stays silent too long.
    const conn = new AbortController()
    const abort = () => conn.abort()
    signal.addEventListener('abort', abort)
    let idle: ReturnType<typeof setTimeout> | undefined
    const alive = () => {
      clearTimeout(idle)
      idle = setTimeout(abort, IDLE_MS)
    }
    const ended: { dropped: string | null } = { dropped: null }
    const parser = new SSEParser()
    let error: unknown
    try {
      const res = await openStream(PATH, query, conn.signal)
      if (signal.aborted) return
      attempt = 0
      dispatch({ type: 'connected' })
      alive()
      await readSSE(
        res.body,
        (messages: SSEMessage[]) => {
          if (signal.aborted) return
          alive()
          const events: LiveEvent[] = []
          for (const m of messages) {
            if (m.event === 'event') {
              try {
                events.push(JSON.parse(m.data) as LiveEvent)
              } catch {
                // not an event: skipped
              }
            } else if (m.event === 'dropped') {
              let reason = 'this page read the stream too slowly'
              try {
                reason = (JSON.parse(m.data) as { reason?: string }).reason || reason
              } catch {
                // the default reason
              }
              ended.dropped = reason
            }
          }
          if (events.length > 0) dispatch({ type: 'events', events, at: Date.now() })
        },
        conn.signal,
        parser,
      )
    } catch (err) {
      error = err
    } finally {
      // The wait the stream asked for ("retry:"), even when it broke off.
      if (parser.retry) base = parser.retry
      clearTimeout(idle)
      signal.removeEventListener('abort', abort)
    }
    if (signal.aborted) return
    if (ended.dropped !== null) {
      dispatch({ type: 'dropped', reason: ended.dropped })
      return
    }
    if (error !== undefined && !retryable(error)) {
      dispatch({ type: 'failed', error })
      return
    }
    attempt++
    const delay = backoff(attempt, base)
    dispatch({ type: 'reconnecting', attempt, delay, error })
    await sleep(delay, signal)
  }
}

export interface Live {
  /** Live is on for the filters given. */
  on: boolean
  status: LiveStatus
  paused: boolean
  /** The live events shown, newest first (at most MAX_LIVE). */
  rows: LiveRow[]
  /** How many events arrived while paused. */
  waitingCount: number
  /** When the last event arrived (ms since the epoch). */
  lastAt: number | null
  /** What a screen reader is told: a state change at once, the count of new events at most every ANNOUNCE_MS. */
  announcement: string
  start: () => void
  stop: () => void
  pause: () => void
  resume: () => void
  /** retry opens the tail again at once (after a drop, a refusal, or while waiting to reconnect). */
  retry: () => void
}

/**
 * useLiveEvents follows GET /api/v1/events/live with query (the filters of GET
 * /api/v1/events) while it is on. It goes off when query changes (null: the filters are not
 * valid) and when the component unmounts.
 */
export function useLiveEvents(query: Query | null): Live {
  const key = query ? buildURL(PATH, query) : null
  const [s, dispatch] = useReducer(reducer, off)
  // Other filters, or none valid: Live goes off (and stays off when they come back).
  if (s.key !== null && s.key !== key) dispatch({ type: 'stop' })
  const on = s.key !== null && s.key === key
  const tailQuery = s.query
  const session = s.session

  useEffect(() => {
    if (!on || !tailQuery) return
    const ctl = new AbortController()
    void follow(tailQuery, ctl.signal, dispatch)
    const tick = setInterval(() => dispatch({ type: 'announce' }), ANNOUNCE_MS)
    return () => {
      ctl.abort()
      clearInterval(tick)
    }
  }, [on, tailQuery, session])

  return {
    on,
    status: s.status,
    paused: s.paused,
    rows: on ? s.rows : [],
    waitingCount: s.waitingCount,
    lastAt: s.lastAt,
    announcement: s.announcement,
    start: () => {
      if (key && query) dispatch({ type: 'start', key, query })
    },
    stop: () => dispatch({ type: 'stop' }),
    pause: () => dispatch({ type: 'pause' }),
    resume: () => dispatch({ type: 'resume' }),
    retry: () => dispatch({ type: 'retry' }),
  }
}
