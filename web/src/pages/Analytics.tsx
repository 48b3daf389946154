import { useEffect, useMemo, useState } from 'react'
import { Link } from 'react-router'
import { keepPreviousData, useQuery } from '@tanstack/react-query'
import { api } from '../api/client'
import type { Analytics as AnalyticsData } from '../api/types'
import { TimeChart } from '../components/TimeChart'
import { Badge, Button, EmptyState, ErrorState, Field, inputClass, Loading, PageHeader, Panel, StatCard } from '../components/ui'
import { useAuth } from '../lib/auth'
import { formatAgo, formatCount, formatDateTime, formatDecimal, formatPercent } from '../lib/format'
import { presets, rangeQuery, toLocalInput, type Preset, type Range } from '../lib/range'
import { allows } from '../lib/roles'
import { eventsHref } from '../lib/events'

const REFRESH_MS = 10_000

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value)
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms)
    return () => clearTimeout(t)
  }, [value, ms])
  return v
}

/** useNow re-renders every interval so that "x s ago" stays true. */
function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms)
    return () => clearInterval(t)
  }, [ms])
  return now
}

/** withTypes returns known with the types of data added, sorted; known itself when none is new. */
function withTypes(known: string[], data: AnalyticsData | undefined): string[] {
  if (!data) return known
  const all = new Set(known)
  data.eventsByType.forEach((t) => all.add(t.eventType))
  return all.size === known.length ? known : [...all].sort()
}

/** FilterButton narrows the page to one type or user (again: back to all); its name says which. */
function FilterButton({ pressed, label, onClick }: { pressed: boolean; label: string; onClick: () => void }) {
  return (
    <button
      type="button"
      aria-label={label}
      aria-pressed={pressed}
      title={label}
      onClick={onClick}
      className={`shrink-0 rounded px-1 font-sans text-xs ${pressed ? 'bg-accent text-accent-ink' : 'text-muted hover:text-ink'}`}
    >
      filter
    </button>
  )
}

export function Analytics() {
  const { role, session } = useAuth()
  const [range, setRange] = useState<Range>({ kind: 'preset', preset: '1h' })
  const [eventType, setEventType] = useState('')
  const [userInput, setUserInput] = useState('')
  const userId = useDebounced(userInput.trim(), 300)
  const [auto, setAuto] = useState(true)
  const [knownTypes, setKnownTypes] = useState<string[]>([])
  const now = useNow(1000)

  const rq = rangeQuery(range)
  const query = 'query' in rq ? { ...rq.query, eventType, userId } : null
  const q = useQuery({
    queryKey: ['analytics', query],
    queryFn: ({ signal }) => api<AnalyticsData>('/api/v1/analytics/metrics', { query: query!, signal }),
    enabled: query !== null,
    placeholderData: keepPreviousData,
    refetchInterval: auto ? REFRESH_MS : false,
  })
  const data = q.data

  // The type filter offers every type seen so far, so filtering by one does not hide the others.
  const seenTypes = withTypes(knownTypes, data)
  if (seenTypes !== knownTypes) setKnownTypes(seenTypes)

  const chart = useMemo(() => {
    if (!data) return null
    return {
      t: data.eventsOverTime.map((b) => new Date(b.timestamp).getTime()),
      lines: [{ label: 'Events', values: data.eventsOverTime.map((b) => b.count) }],
    }
  }, [data])
  const peakBucket = data?.eventsOverTime.reduce((m, b) => (b.count > m.count ? b : m), { timestamp: '', count: 0 })

  const setPreset = (p: Preset) => setRange({ kind: 'preset', preset: p })
  const setCustom = () => {
    const end = new Date()
    const start = new Date(end.getTime() - 6 * 3600 * 1000)
    setRange({ kind: 'custom', from: toLocalInput(start), to: toLocalInput(end) })
  }

  return (
    <div>
      <PageHeader
        title="Analytics"
        description={data ? `${formatDateTime(data.timeRange.start)} – ${formatDateTime(data.timeRange.end)}` : 'Events by time, type and user'}
        actions={
          <>
            <span className="text-xs text-muted" aria-live="polite" data-testid="last-updated">
              {/* now ticks once a second: an answer newer than it is "just now", not "in the future" */}
              {q.dataUpdatedAt ? `Updated ${formatAgo(q.dataUpdatedAt, Math.max(now, q.dataUpdatedAt))}` : 'Not loaded yet'}
              {q.isFetching && ' · refreshing…'}
            </span>
            <label className="flex cursor-pointer items-center gap-2 text-sm">
              <input type="checkbox" role="switch" checked={auto} onChange={(e) => setAuto(e.target.checked)} className="h-4 w-4 accent-[var(--accent)]" aria-describedby="auto-hint" />
              Auto-refresh
              <span id="auto-hint" className="sr-only">
                Refreshes every 10 seconds
              </span>
            </label>
            <Button onClick={() => q.refetch()} disabled={q.isFetching || query === null}>
              Refresh
            </Button>
          </>
        }
      />

      <Panel className="mb-4">
        <div className="flex flex-wrap items-end gap-4">
          <fieldset className="flex flex-col gap-1">
            <legend className="mb-1 text-xs font-medium text-muted">Time range</legend>
            <div className="flex flex-wrap gap-1" role="group">
              {presets.map((p) => (
                <Button key={p.value} variant={range.kind === 'preset' && range.preset === p.value ? 'primary' : 'default'} aria-pressed={range.kind === 'preset' && range.preset === p.value} onClick={() => setPreset(p.value)}>
                  {p.label}
                </Button>
              ))}
              <Button variant={range.kind === 'custom' ? 'primary' : 'default'} aria-pressed={range.kind === 'custom'} onClick={setCustom}>
                Custom
              </Button>
            </div>
          </fieldset>
          {range.kind === 'custom' && (
            <>
              <Field label="From" htmlFor="from">
                <input id="from" type="datetime-local" className={inputClass} value={range.from} onChange={(e) => setRange({ ...range, from: e.target.value })} />
              </Field>
              <Field label="To" htmlFor="to">
                <input id="to" type="datetime-local" className={inputClass} value={range.to} onChange={(e) => setRange({ ...range, to: e.target.value })} />
              </Field>
            </>
          )}
          <div className="min-w-40">
            <Field label="Event type" htmlFor="eventType">
              <select id="eventType" className={inputClass} value={eventType} onChange={(e) => setEventType(e.target.value)}>
                <option value="">All types</option>
                {knownTypes.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            </Field>
          </div>
          <div className="min-w-48 flex-1">
            <Field label="User" htmlFor="userSearch">
              <input id="userSearch" type="search" className={inputClass} placeholder="Search user ids" value={userInput} onChange={(e) => setUserInput(e.target.value)} />
            </Field>
          </div>
        </div>
        {'error' in rq && (
          <p role="alert" className="mt-3 text-sm text-bad">
            {rq.error}
          </p>
        )}
      </Panel>

      {q.isError && <div className="mb-4"><ErrorState error={q.error} onRetry={() => q.refetch()} /></div>}
      {q.isPending && query !== null && !q.isError && <Loading label="Loading analytics…" />}

      {data && (
        <div className="flex flex-col gap-4" aria-busy={q.isFetching}>
          <div className="grid grid-cols-2 gap-3 lg:grid-cols-4">
            <StatCard label="Total events" value={formatCount(data.totalEvents)} />
            <StatCard label="Unique users" value={formatCount(data.uniqueUsers)} />
            <StatCard label="Unique sessions" value={formatCount(data.uniqueSessions)} />
            <StatCard label="Events per user" value={formatDecimal(data.avgEventsPerUser)} hint="average" />
          </div>

          {data.totalEvents === 0 ? (
            <EmptyState title="No events in this range">
              {eventType || userId ? 'Nothing matches the filters. Clear the event type or user search, or pick a longer time range.' : 'Pick a longer time range, or send events to evp: '}
              {!eventType && !userId && (
                <>
                  <code className="rounded bg-raised px-1">POST /api/v1/events</code> with an API key{' '}
                  {session?.kind === 'jwt' && allows(role, 'OPERATOR') ? (
                    <>
                      (create one on the{' '}
                      <Link to="/api-keys" className="text-accent underline">
                        API keys
                      </Link>{' '}
                      page).
                    </>
                  ) : (
                    <>(create one with <code className="rounded bg-raised px-1">evp apikey create --name NAME</code>).</>
                  )}
                </>
              )}
            </EmptyState>
          ) : (
            <>
              <div className="grid gap-4 xl:grid-cols-3">
                <Panel title="Events over time" className="flex flex-col xl:col-span-2">
                  {chart && (
                    <TimeChart
                      t={chart.t}
                      lines={chart.lines}
                      bars
                      format={(v) => formatCount(v)}
                      summary={`Events over time: ${data.totalEvents} events in ${data.eventsOverTime.length} buckets; the busiest bucket, starting ${formatDateTime(peakBucket?.timestamp)}, has ${peakBucket?.count ?? 0}.`}
                    />
                  )}
                </Panel>
                <Panel title="Events by type">
                  <ul className="flex max-h-96 flex-col gap-2 overflow-y-auto" aria-label="Events by type" data-testid="events-by-type">
                    {data.eventsByType.map((t) => (
                      <li key={t.eventType}>
                        <div className="flex justify-between gap-2 text-sm">
                          <Link to={eventsHref(range, { eventType: t.eventType })} className="truncate text-accent underline-offset-2 hover:underline" title={`Events of type ${t.eventType} in this range`}>
                            {t.eventType}
                          </Link>
                          <span className="flex shrink-0 items-center gap-1">
                            <span className="tabular-nums text-muted">
                              {formatCount(t.count)} · <span className="text-ink">{formatPercent(t.percentage)}</span>
                            </span>
                            <FilterButton pressed={eventType === t.eventType} label={`Filter analytics by ${t.eventType}`} onClick={() => setEventType(eventType === t.eventType ? '' : t.eventType)} />
                          </span>
                        </div>
                        <div className="mt-1 h-2 rounded-full bg-raised" aria-hidden="true">
                          <div className="h-2 rounded-full bg-accent" style={{ width: `${Math.max(t.percentage, 0.5)}%` }} />
                        </div>
                      </li>
                    ))}
                  </ul>
                </Panel>
              </div>
              <Panel title="Top users">
                <div className="relative overflow-x-auto">
                  <table className="w-full text-left text-sm" data-testid="top-users">
                    <thead className="text-xs text-muted uppercase">
                      <tr>
                        <th scope="col" className="py-2 pr-4 font-medium">User</th>
                        <th scope="col" className="py-2 pr-4 text-right font-medium">Events</th>
                        <th scope="col" className="hidden py-2 pr-4 font-medium sm:table-cell">Types</th>
                        <th scope="col" className="py-2 font-medium">Last event</th>
                      </tr>
                    </thead>
                    <tbody>
                      {data.topUsers.map((u) => (
                        <tr key={u.userId} className="border-t border-line">
                          <td className="max-w-56 py-2 pr-4 font-mono">
                            <span className="flex items-center gap-1">
                              <Link to={eventsHref(range, { userId: u.userId, eventType })} className="truncate text-accent underline-offset-2 hover:underline" title={`Events of ${u.userId} in this range`}>
                                {u.userId}
                              </Link>
                              <FilterButton pressed={userId === u.userId} label={`Filter analytics by ${u.userId}`} onClick={() => setUserInput(userId === u.userId ? '' : u.userId)} />
                            </span>
                          </td>
                          <td className="py-2 pr-4 text-right tabular-nums">{formatCount(u.eventCount)}</td>
                          <td className="hidden py-2 pr-4 sm:table-cell">
                            <div className="flex flex-wrap gap-1">
                              {u.eventTypes.slice(0, 4).map((t) => (
                                <Badge key={t}>{t}</Badge>
                              ))}
                              {u.eventTypes.length > 4 && <Badge>+{u.eventTypes.length - 4}</Badge>}
                            </div>
                          </td>
                          <td className="py-2 whitespace-nowrap text-muted">{formatAgo(u.lastEventAt, now)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </Panel>
            </>
          )}
        </div>
      )}
    </div>
  )
}
