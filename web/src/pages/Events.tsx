import { useState, type FormEvent } from 'react'
import { useLocation, useNavigate, useSearchParams } from 'react-router'
import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query'
import { api, download, forgetUserEvents, type UserEventsDeleted } from '../api/client'
import type { EventPage, LiveEvent } from '../api/types'
import { EventDrawer } from '../components/EventDrawer'
import { ForgetError, ForgetUserDialog } from '../components/ForgetUserDialog'
import { LiveBar } from '../components/LiveBar'
import { Badge, Button, EmptyState, ErrorState, Field, inputClass, Loading, PageHeader, Panel } from '../components/ui'
import { useAuth } from '../lib/auth'
import { eventsQuery, filtersFrom, preview, textFilters, type TextFilter } from '../lib/events'
import { formatClock, formatCount, formatDateTime } from '../lib/format'
import { useLiveEvents } from '../lib/liveEvents'
import { presets, toLocalInput, type Preset } from '../lib/range'

const PAGE = 50

/** A count in full (a deletion's record is exact, not 1.8k). */
const exactCount = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 })

const labels: Record<TextFilter, { label: string; placeholder: string; hint?: string }> = {
  eventType: { label: 'Event type', placeholder: 'page_view' },
  userId: { label: 'User id', placeholder: 'user_42' },
  sessionId: { label: 'Session id', placeholder: 'sess_1' },
  prop: { label: 'Property', placeholder: 'metadata.page:/home', hint: 'FIELD.PATH:VALUE; FIELD is metadata, payload or properties' },
}

type Drafts = Record<TextFilter, string>

/** iso turns a datetime-local value (local time) into RFC 3339 UTC; '' stays ''. */
function iso(local: string): string {
  const d = new Date(local)
  return local && !Number.isNaN(d.getTime()) ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : ''
}

/** local shows an RFC 3339 time in a datetime-local input. */
function local(t: string): string {
  const d = new Date(t)
  return t && !Number.isNaN(d.getTime()) ? toLocalInput(d) : ''
}

export function Events() {
  const [sp, setSp] = useSearchParams()
  const loc = useLocation()
  const navigate = useNavigate()
  const filters = filtersFrom(sp)
  const { range } = filters
  const eq = eventsQuery(filters)
  const query = 'query' in eq ? eq.query : null

  // The text filters apply on submit (Enter or Apply), not at every key; what is typed starts
  // again from the address whenever the address changes (a link, Back).
  const applied: Drafts = { eventType: filters.eventType, userId: filters.userId, sessionId: filters.sessionId, prop: filters.prop }
  const appliedKey = textFilters.map((k) => applied[k]).join('\n')
  const [drafts, setDrafts] = useState<Drafts>(applied)
  const [draftsOf, setDraftsOf] = useState(appliedKey)
  if (draftsOf !== appliedKey) {
    setDraftsOf(appliedKey)
    setDrafts(applied)
  }

  /** change returns the address's query string with some parameters set ('' or null removes them). */
  const change = (set: Record<string, string | null>): URLSearchParams => {
    const next = new URLSearchParams(sp)
    for (const [k, v] of Object.entries(set)) {
      if (v === null) next.delete(k)
      else next.set(k, v)
    }
    return next
  }
  const setPreset = (p: Preset) => setSp(change({ timeRange: p, from: null, to: null, event: null }))
  const setCustom = () => {
    const end = new Date()
    const start = new Date(end.getTime() - 6 * 3600 * 1000)
    setSp(change({ timeRange: null, from: iso(toLocalInput(start)), to: iso(toLocalInput(end)), event: null }))
  }
  const apply = (e: FormEvent) => {
    e.preventDefault()
    const set: Record<string, string | null> = { event: null }
    for (const k of textFilters) set[k] = drafts[k].trim() || null
    setSp(change(set))
  }
  const clear = () => setSp(change({ eventType: null, userId: null, sessionId: null, prop: null, event: null }))
  const filtered = textFilters.some((k) => applied[k])

  const list = useInfiniteQuery({
    queryKey: ['events', 'list', query],
    queryFn: ({ pageParam, signal }) => api<EventPage>('/api/v1/events', { query: { ...query!, limit: PAGE, cursor: pageParam }, signal }),
    initialPageParam: '' as string,
    getNextPageParam: (last) => last.nextCursor || undefined,
    enabled: query !== null,
  })
  // Live: new events that match the filters, at the top (the newest first), over those loaded;
  // one already in the list is not shown twice. Other filters turn it off.
  const live = useLiveEvents(query)
  const stored = list.data?.pages.flatMap((p) => p.events) ?? []
  const storedIds = new Set(stored.map((e) => e.eventId))
  const rows: { event: LiveEvent; arrivedAt?: number }[] = [...live.rows.filter((r) => !storedIds.has(r.event.eventId)), ...stored.map((event) => ({ event }))]
  const events = rows.map((r) => r.event)
  const toggleLive = () => {
    if (!live.on) {
      live.start()
      return
    }
    // Off: the list as stored, the events streamed meanwhile included.
    live.stop()
    void list.refetch()
  }
  const types = [...new Set(events.map((e) => e.eventType))].sort()

  const exportFile = useMutation({
    mutationFn: (format: 'ndjson' | 'csv') => download('/api/v1/events/export', { ...query!, format }, `events.${format}`),
  })

  // An ADMIN may delete every event of the user the list is filtered by (an erasure request).
  const { session, role } = useAuth()
  const forgetId = session?.kind === 'jwt' && role === 'ADMIN' ? filters.userId : ''
  const qc = useQueryClient()
  const [forgetOpen, setForgetOpen] = useState(false)
  const [forgotten, setForgotten] = useState<UserEventsDeleted | null>(null)
  const forget = useMutation({
    mutationFn: (userId: string) => forgetUserEvents(userId),
    onSuccess: (r) => {
      setForgetOpen(false)
      setForgotten(r)
      // What listed or counted the events: the list (refetched now), an open event, the
      // analytics and the dead letters. Live starts again without the rows it held.
      void qc.invalidateQueries({ queryKey: ['events'] })
      void qc.invalidateQueries({ queryKey: ['analytics'] })
      void qc.invalidateQueries({ queryKey: ['dead-letters'] })
      if (live.on) live.start()
    },
  })
  const openForget = () => {
    // A deletion still running (the dialog was closed meanwhile) is shown as it goes on.
    if (!forget.isPending) forget.reset()
    setForgetOpen(true)
  }

  const selectedId = sp.get('event')
  const selected = selectedId !== null ? events.find((e) => e.eventId === selectedId) : undefined
  // Opening an event is a step in the history (Back closes it on a phone); closing it goes back
  // that step, or, when the address came with the event (a link), drops it from the address.
  const open = (e: LiveEvent) => setSp(change({ event: e.eventId }), { state: { drawer: true } })
  const close = () => {
    if ((loc.state as { drawer?: boolean } | null)?.drawer) navigate(-1)
    else setSp(change({ event: null }), { replace: true })
  }
  const hrefFor = (k: TextFilter, v: string) => `/events?${change({ [k]: v, event: null })}`

  return (
    <div>
      <PageHeader
        title="Events"
        description="Stored events, newest first. Filter by time, type, user, session or a property; open one to see all of it."
        actions={
          <>
            <Button
              variant={live.on ? 'primary' : 'default'}
              aria-pressed={live.on}
              onClick={toggleLive}
              disabled={query === null}
              title="Show new events that match the filters at the top of the list as they arrive"
              data-testid="live-toggle"
            >
              <span aria-hidden="true" className={`inline-block h-2 w-2 rounded-full ${live.on ? 'bg-accent-ink' : 'bg-muted'}`} />
              Live
            </Button>
            <Button onClick={() => list.refetch()} disabled={list.isFetching || query === null}>
              Refresh
            </Button>
            <div role="group" aria-labelledby="export-label" className="flex items-center gap-1">
              <span id="export-label" className="mr-1 text-sm text-muted">
                Export
              </span>
              {(['ndjson', 'csv'] as const).map((f) => (
                <Button key={f} title={`Download the events that match the filters as ${f.toUpperCase()}`} onClick={() => exportFile.mutate(f)} disabled={query === null || exportFile.isPending}>
                  {exportFile.isPending && exportFile.variables === f ? 'Exporting…' : f === 'ndjson' ? 'NDJSON' : 'CSV'}
                </Button>
              ))}
            </div>
          </>
        }
      />
      {exportFile.isError && (
        <div className="mb-4">
          <ErrorState error={exportFile.error} />
        </div>
      )}

      <Panel className="mb-4">
        <div className="flex flex-col gap-4">
          <div className="flex flex-wrap items-end gap-4">
            <fieldset className="flex flex-col gap-1">
              <legend className="mb-1 text-xs font-medium text-muted">Time range</legend>
              <div className="flex flex-wrap gap-1" role="group">
                {presets.map((p) => {
                  const on = range.kind === 'preset' && range.preset === p.value
                  return (
                    <Button key={p.value} variant={on ? 'primary' : 'default'} aria-pressed={on} onClick={() => setPreset(p.value)}>
                      {p.label}
                    </Button>
                  )
                })}
                <Button variant={range.kind === 'custom' ? 'primary' : 'default'} aria-pressed={range.kind === 'custom'} onClick={setCustom}>
                  Custom
                </Button>
              </div>
            </fieldset>
            {range.kind === 'custom' && (
              <>
                <Field label="From" htmlFor="from">
                  <input id="from" type="datetime-local" className={inputClass} value={local(range.from)} onChange={(e) => setSp(change({ from: iso(e.target.value) }), { replace: true })} />
                </Field>
                <Field label="To" htmlFor="to">
                  <input id="to" type="datetime-local" className={inputClass} value={local(range.to)} onChange={(e) => setSp(change({ to: iso(e.target.value) }), { replace: true })} />
                </Field>
              </>
            )}
          </div>
          <form onSubmit={apply} className="grid grid-cols-1 items-start gap-3 sm:grid-cols-2 xl:grid-cols-[repeat(4,minmax(0,1fr))_auto]" aria-label="Filters">
            {textFilters.map((k) => (
              <Field key={k} label={labels[k].label} htmlFor={`filter-${k}`} hint={labels[k].hint}>
                <input
                  id={`filter-${k}`}
                  type="search"
                  className={`${inputClass} ${k === 'eventType' ? '' : 'font-mono'}`}
                  placeholder={labels[k].placeholder}
                  value={drafts[k]}
                  list={k === 'eventType' ? 'event-types' : undefined}
                  autoComplete="off"
                  spellCheck={false}
                  onChange={(e) => setDrafts({ ...drafts, [k]: e.target.value })}
                />
              </Field>
            ))}
            <div className="flex gap-2 xl:pt-5">
              <Button type="submit" variant="primary">
                Apply
              </Button>
              {filtered && <Button onClick={clear}>Clear</Button>}
            </div>
          </form>
          <datalist id="event-types">
            {types.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </div>
        {'error' in eq && (
          <p role="alert" className="mt-3 text-sm text-bad">
            {eq.error}
          </p>
        )}
      </Panel>

      <Panel
        title={events.length > 0 ? `${formatCount(events.length)}${list.hasNextPage ? '+' : ''} event${events.length === 1 ? '' : 's'}` : 'Events'}
        actions={
          forgetId && (
            <Button variant="danger" aria-haspopup="dialog" onClick={openForget} title={`Delete every stored event of ${forgetId}`} data-testid="forget-user">
              Delete this user&apos;s events…
            </Button>
          )
        }
      >
        {forgetId !== '' || forgotten ? (
          <div role="status" aria-live="polite" data-testid="forget-status">
            {forgotten && (
              <p className="mb-3 text-sm wrap-anywhere text-good">
                Deleted {exactCount.format(forgotten.deleted)} event{forgotten.deleted === 1 ? '' : 's'} of <span className="font-mono">{forgotten.userId}</span>.
              </p>
            )}
          </div>
        ) : null}
        {forget.isError && !forgetOpen && (
          <div className="mb-3">
            <ForgetError error={forget.error} />
          </div>
        )}
        {live.on && <LiveBar live={live} />}
        {list.isPending && query !== null && !list.isError && <Loading label="Loading events…" />}
        {list.isError && !list.isFetchNextPageError && (
          <div className="mb-3">
            <ErrorState error={list.error} onRetry={() => list.refetch()} />
          </div>
        )}
        {list.data && events.length === 0 && !list.hasNextPage && (
          <EmptyState title={filtered ? 'No events match the filters' : 'No events in this range'}>
            {filtered ? 'Check the filters (they match exactly), clear them, or pick a longer time range.' : 'Pick a longer time range, or send events to evp.'}
          </EmptyState>
        )}
        {list.data && events.length === 0 && list.hasNextPage && (
          <p role="status" className="rounded-xl border border-dashed border-line p-4 text-sm text-muted" data-testid="searching">
            No matching events in the part of the range searched so far. evp answers after searching a slice of it: load more to search on.
          </p>
        )}
        {events.length > 0 && (
          <div className="relative overflow-x-auto" aria-busy={list.isFetching}>
            <table className="events w-full text-left text-sm" data-testid="events">
              <thead className="text-xs text-muted uppercase">
                <tr>
                  <th scope="col" className="py-2 pr-4 font-medium">Time</th>
                  <th scope="col" className="py-2 pr-4 font-medium">Type</th>
                  <th scope="col" className="py-2 pr-4 font-medium">User</th>
                  <th scope="col" className="hidden py-2 pr-4 font-medium md:table-cell">Source</th>
                  <th scope="col" className="hidden py-2 font-medium lg:table-cell">Properties</th>
                </tr>
              </thead>
              <tbody>
                {rows.map(({ event: e, arrivedAt }) => {
                  const props = preview(e)
                  const current = e.eventId === selectedId
                  return (
                    <tr key={e.eventId} onClick={() => open(e)} data-live={arrivedAt !== undefined || undefined} className={`cursor-pointer border-t border-line hover:bg-raised ${current ? 'bg-raised' : ''}`}>
                      <td className="py-2 pr-4 whitespace-nowrap">
                        <button
                          type="button"
                          className="text-left text-accent underline-offset-2 hover:underline"
                          aria-label={`${formatDateTime(e.timestamp, true)}, ${e.eventType} by ${e.userId}: show the event`}
                          aria-haspopup="dialog"
                          onClick={(ev) => {
                            ev.stopPropagation()
                            open(e)
                          }}
                        >
                          {formatDateTime(e.timestamp, true)}
                        </button>
                        {arrivedAt !== undefined && (
                          <span className="block text-xs text-accent" data-testid="live-mark">
                            Received live at {formatClock(arrivedAt)}
                          </span>
                        )}
                      </td>
                      <td className="max-w-48 truncate py-2 pr-4 font-mono">{e.eventType}</td>
                      <td className="max-w-48 truncate py-2 pr-4 font-mono" title={e.userId}>{e.userId}</td>
                      <td className="hidden py-2 pr-4 md:table-cell">{e.source ? <Badge>{e.source}</Badge> : <span className="text-muted">—</span>}</td>
                      <td className="hidden max-w-md truncate py-2 font-mono text-xs text-muted lg:table-cell" title={props}>{props || '—'}</td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          </div>
        )}
        {list.isFetchNextPageError && <div className="mt-3"><ErrorState error={list.error} onRetry={() => list.fetchNextPage()} /></div>}
        {list.data && !list.isFetchNextPageError && (list.hasNextPage ? (
          <Button className="mt-3" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
            {list.isFetchingNextPage ? 'Loading…' : 'Load more'}
          </Button>
        ) : (
          events.length > 0 && <p className="mt-3 text-xs text-muted">That is every event that matches.</p>
        ))}
      </Panel>

      {/* What Live tells a screen reader: its state at once, the count of new events every few seconds. */}
      <div role="status" aria-live="polite" className="sr-only" data-testid="live-announcer">
        {live.on ? live.announcement : ''}
      </div>
      <EventDrawer eventId={selectedId} event={selected} onClose={close} hrefFor={hrefFor} />
      {forgetId && (
        <ForgetUserDialog
          open={forgetOpen}
          userId={forgetId}
          busy={forget.isPending}
          error={forget.error}
          onConfirm={() => forget.mutate(forgetId)}
          onCancel={() => setForgetOpen(false)}
        />
      )}
    </div>
  )
}
