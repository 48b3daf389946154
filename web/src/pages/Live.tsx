import { useMemo } from 'react'
import { useQuery } from '@tanstack/react-query'
import { Link } from 'react-router'
import { api, getHealth } from '../api/client'
import type { IngestionMetrics, Metrics, RateHistory, StreamInfo } from '../api/types'
import { TimeChart } from '../components/TimeChart'
import { Badge, ErrorState, Loading, PageHeader, Panel, StatCard } from '../components/ui'
import { formatAgo, formatCount, formatDuration, formatLatency, formatRate } from '../lib/format'
import { historySeries, peak } from '../lib/series'
import { useAuth } from '../lib/auth'
import { allows } from '../lib/roles'

const POLL_MS = 3000

export function Live() {
  const { role, session } = useAuth()
  const canSeeDeadLetters = session?.kind === 'jwt' && allows(role, 'OPERATOR')
  const metrics = useQuery({ queryKey: ['metrics'], queryFn: ({ signal }) => api<Metrics>('/api/metrics', { signal }), refetchInterval: POLL_MS })
  const ingestion = useQuery({ queryKey: ['metrics', 'ingestion'], queryFn: ({ signal }) => api<IngestionMetrics>('/api/metrics/ingestion', { signal }), refetchInterval: POLL_MS })
  const stream = useQuery({ queryKey: ['metrics', 'stream'], queryFn: ({ signal }) => api<StreamInfo>('/api/metrics/stream', { signal }), refetchInterval: POLL_MS })
  const health = useQuery({ queryKey: ['health'], queryFn: ({ signal }) => getHealth(signal), refetchInterval: POLL_MS })
  // evp keeps the last 10 minutes of rates, so the chart has them at once.
  const history = useQuery({ queryKey: ['metrics', 'history'], queryFn: ({ signal }) => api<RateHistory>('/api/metrics/history', { signal }), refetchInterval: POLL_MS })
  const series = useMemo(() => (history.data ? historySeries(history.data.points, history.data.stepSeconds) : null), [history.data])
  const lines = useMemo(
    () =>
      series && [
        { label: 'Ingested', values: series.values[0] },
        { label: 'Processed', values: series.values[1], dashed: true },
      ],
    [series],
  )

  const m = metrics.data
  // The last answer is kept while evp does not answer: it must not read as healthy.
  const unreachable = health.isError
  const h = unreachable ? undefined : health.data
  const st = stream.data
  const lag = st?.groups.reduce((a, g) => a + Math.max(g.lag, 0), 0)
  const consumers = st?.groups.reduce((a, g) => a + g.consumers.length, 0)

  return (
    <div>
      <PageHeader
        title="Live"
        description="Ingestion, processing and the buffer, polled every 3 seconds."
        actions={
          <span className="text-xs text-muted" aria-live="polite">
            {metrics.dataUpdatedAt ? `Updated ${formatAgo(metrics.dataUpdatedAt)}` : ''}
          </span>
        }
      />
      {metrics.isError && (
        <div className="mb-4">
          <ErrorState error={metrics.error} onRetry={() => metrics.refetch()} />
        </div>
      )}
      {metrics.isPending && !metrics.isError && <Loading label="Loading metrics…" />}
      {m && (
        <div className="flex flex-col gap-4">
          <div className="grid grid-cols-2 gap-3 md:grid-cols-3 xl:grid-cols-6">
            <StatCard label="Ingestion" value={formatRate(ingestion.data?.rate ?? m.ingestion.rate)} hint={`${formatCount(ingestion.data?.totalIngested ?? m.ingestion.totalIngested)} accepted`} />
            <StatCard label="Processing" value={formatRate(m.processing.eventsPerSecond)} hint={`${formatCount(m.processing.totalEvents)} stored`} />
            <StatCard label="Queue length" value={formatCount(m.queue.streamLength)} hint="not yet acknowledged" tone={m.queue.streamLength > 10000 ? 'warn' : undefined} />
            <StatCard label="Pending" value={formatCount(m.queue.pendingMessages)} hint="with a worker now" />
            <StatCard label="Dead letters" value={formatCount(m.errors.dlqEvents)} hint={
                canSeeDeadLetters && m.errors.dlqEvents > 0 ? (
                  <Link to="/dead-letters" className="underline">
                    Inspect and replay
                  </Link>
                ) : (
                  `${formatCount(m.errors.failedEvents)} failed writes`
                )
              } tone={m.errors.dlqEvents > 0 ? 'bad' : 'good'} />
            <StatCard label="Last batch" value={formatCount(m.processing.lastBatchSize)} hint={m.processing.lastProcessedTimestamp ? formatAgo(m.processing.lastProcessedTimestamp) : 'no batch yet'} />
          </div>
        </div>
      )}
      <Panel title="Events per second (last 10 minutes)" className="mt-4">
        {history.isError && !series && <ErrorState error={history.error} onRetry={() => history.refetch()} />}
        {history.isPending && <Loading label="Loading the last 10 minutes…" />}
        {series && lines && series.t.length < 2 && (
          <p className="py-8 text-center text-sm text-muted">evp records the rates every 10 seconds from its start: the chart begins with its second point.</p>
        )}
        {series && lines && series.t.length >= 2 && (
          <>
            <TimeChart
              t={series.t}
              lines={lines}
              clock
              height={240}
              format={(v) => formatRate(v).replace('/s', '')}
              summary={`Ingestion and processing rates over the last ${formatDuration((series.t[series.t.length - 1] - series.t[0]) / 1000 + history.data!.stepSeconds)}; ingestion peaked at ${formatRate(peak(series.values[0]))}, processing at ${formatRate(peak(series.values[1]))}.`}
            />
            <p className="mt-2 text-xs text-muted">
              Averages over 10 seconds, kept by evp since it started. Processed is how fast the event store grew, so it counts every worker.
            </p>
          </>
        )}
      </Panel>

      <div className="mt-4 grid gap-4 lg:grid-cols-2">
        <Panel
          title="Health"
          actions={unreachable ? <Badge tone="bad">unreachable</Badge> : h && <Badge tone={h.status === 'healthy' ? 'good' : h.status === 'degraded' ? 'warn' : 'bad'}>{h.status}</Badge>}
        >
          {unreachable && <ErrorState error={health.error} onRetry={() => health.refetch()} />}
          {h && (
            <>
              <ul className="divide-y divide-line" aria-label="Components">
                {Object.entries(h.services).map(([name, s]) => (
                  <li key={name} className="flex items-center justify-between gap-2 py-2 text-sm">
                    <span className="flex items-center gap-2">
                      <span aria-hidden="true" className={`inline-block h-2.5 w-2.5 rounded-full ${s.status === 'up' ? 'bg-good' : s.status === 'degraded' ? 'bg-warn' : 'bg-bad'}`} />
                      <span className="font-medium">{name}</span>
                      <span className="sr-only">{s.status}</span>
                    </span>
                    <span className="text-right text-muted tabular-nums">
                      {s.status !== 'up' && <span className="mr-2 text-bad">{s.error ?? s.status}</span>}
                      {formatLatency(s.latencyMs)}
                    </span>
                  </li>
                ))}
              </ul>
              <p className="mt-3 text-xs text-muted">
                evp {h.version} · up {formatDuration(h.uptime)}
              </p>
            </>
          )}
        </Panel>
        <Panel title="Workers and lag" actions={st && <Badge>{st.backend === 'redis' ? `Redis stream ${st.stream}` : 'embedded buffer'}</Badge>}>
          {stream.isError && <ErrorState error={stream.error} onRetry={() => stream.refetch()} />}
          {st && (
            <>
              <p className="mb-3 text-sm text-muted">
                {formatCount(lag)} waiting for delivery · {formatCount(consumers)} consumer{consumers === 1 ? '' : 's'} · {formatCount(st.totalEnqueued)} buffered in all
              </p>
              <div className="relative overflow-x-auto">
                <table className="w-full text-left text-sm">
                  <thead className="text-xs text-muted uppercase">
                    <tr>
                      <th scope="col" className="py-2 pr-3 font-medium">Group / consumer</th>
                      <th scope="col" className="py-2 pr-3 text-right font-medium">Pending</th>
                      <th scope="col" className="py-2 text-right font-medium">Lag / idle</th>
                    </tr>
                  </thead>
                  <tbody>
                    {st.groups.map((g) => [
                      <tr key={g.name} className="border-t border-line font-medium">
                        <td className="py-2 pr-3">{g.name}</td>
                        <td className="py-2 pr-3 text-right tabular-nums">{formatCount(g.pending)}</td>
                        <td className="py-2 text-right tabular-nums">{g.lag < 0 ? 'unknown' : formatCount(g.lag)}</td>
                      </tr>,
                      ...g.consumers.map((c) => (
                        <tr key={`${g.name}/${c.name}`} className="text-muted">
                          <td className="py-1 pr-3 pl-4">{c.name}</td>
                          <td className="py-1 pr-3 text-right tabular-nums">{formatCount(c.pending)}</td>
                          <td className="py-1 text-right tabular-nums">{c.idleMs ? formatDuration(c.idleMs / 1000) : '—'}</td>
                        </tr>
                      )),
                    ])}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </Panel>
      </div>
    </div>
  )
}
