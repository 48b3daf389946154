import { useState } from 'react'
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { api } from '../api/client'
import type { DeadLetter, DeadLetterPage, DeadLetterReplayAll } from '../api/types'
import { Badge, Button, ConfirmDialog, EmptyState, ErrorState, Loading, PageHeader, Panel } from '../components/ui'
import { formatAgo, formatCount, formatDateTime } from '../lib/format'

const PAGE = 50

function eventSummary(d: DeadLetter): string {
  const e = d.event as { eventType?: string; userId?: string } | undefined
  if (e && typeof e === 'object') return [e.eventType, e.userId].filter(Boolean).join(' · ')
  return d.raw ? 'undecodable event' : ''
}

function Detail({ id, onClose }: { id: string; onClose: () => void }) {
  const qc = useQueryClient()
  const [confirm, setConfirm] = useState<'delete' | null>(null)
  const item = useQuery({ queryKey: ['dead-letters', 'item', id], queryFn: ({ signal }) => api<DeadLetter>(`/api/v1/dead-letters/${encodeURIComponent(id)}`, { signal }) })
  // The letter is gone once replayed or deleted: forget it rather than refetch it (a 404).
  const done = () => {
    qc.removeQueries({ queryKey: ['dead-letters', 'item', id], exact: true })
    qc.invalidateQueries({ queryKey: ['dead-letters', 'list'] })
    onClose()
  }
  const replay = useMutation({ mutationFn: () => api(`/api/v1/dead-letters/${encodeURIComponent(id)}/replay`, { method: 'POST' }), onSuccess: done })
  const remove = useMutation({ mutationFn: () => api(`/api/v1/dead-letters/${encodeURIComponent(id)}`, { method: 'DELETE' }), onSuccess: done })
  const d = item.data
  return (
    <Panel
      title="Dead letter"
      actions={
        <Button variant="ghost" onClick={onClose}>
          Close
        </Button>
      }
    >
      {item.isPending && <Loading />}
      {item.isError && <ErrorState error={item.error} onRetry={() => item.refetch()} />}
      {d && (
        <div className="flex flex-col gap-3 text-sm">
          <dl className="grid grid-cols-[8rem_1fr] gap-x-3 gap-y-1">
            <dt className="text-muted">Event id</dt>
            <dd className="font-mono break-all">{d.eventId ?? '—'}</dd>
            <dt className="text-muted">Failed</dt>
            <dd>{formatDateTime(d.failedAt, true)}</dd>
            <dt className="text-muted">Attempts</dt>
            <dd>{d.attempts}</dd>
          </dl>
          <div>
            <h3 className="mb-1 text-xs font-semibold text-muted uppercase">Error</h3>
            <pre className="rounded-lg border border-bad/40 bg-bad/10 p-3 whitespace-pre-wrap text-bad">{d.error}</pre>
          </div>
          <div>
            <h3 className="mb-1 text-xs font-semibold text-muted uppercase">{d.event ? 'Event' : 'Raw body'}</h3>
            <pre className="max-h-96 overflow-auto rounded-lg border border-line bg-raised p-3 font-mono text-xs">{d.event ? JSON.stringify(d.event, null, 2) : (d.raw ?? '')}</pre>
          </div>
          {(replay.isError || remove.isError) && <ErrorState error={replay.error ?? remove.error} />}
          {!d.replayable && <p className="text-muted">This entry could not be decoded, so it cannot be replayed; delete it once you have looked at it.</p>}
          <div className="flex gap-2">
            <Button variant="primary" onClick={() => replay.mutate()} disabled={replay.isPending || !d.replayable}>
              {replay.isPending ? 'Replaying…' : 'Replay'}
            </Button>
            <Button variant="danger" onClick={() => setConfirm('delete')}>
              Delete
            </Button>
          </div>
        </div>
      )}
      <ConfirmDialog open={confirm === 'delete'} title="Delete this dead letter?" confirmLabel="Delete" busy={remove.isPending} onCancel={() => setConfirm(null)} onConfirm={() => remove.mutate()}>
        The event is dropped for good: it will not be stored. Replay it instead if it should be.
      </ConfirmDialog>
    </Panel>
  )
}

export function DeadLetters() {
  const qc = useQueryClient()
  const [selected, setSelected] = useState<string | null>(null)
  const [confirmAll, setConfirmAll] = useState(false)
  const list = useInfiniteQuery({
    queryKey: ['dead-letters', 'list'],
    queryFn: ({ pageParam, signal }) => api<DeadLetterPage>('/api/v1/dead-letters', { query: { cursor: pageParam, limit: PAGE }, signal }),
    initialPageParam: '' as string,
    getNextPageParam: (last) => last.nextCursor || undefined,
    refetchInterval: 15_000,
  })
  const [replayed, setReplayed] = useState<DeadLetterReplayAll | null>(null)
  const replayAll = useMutation({
    mutationFn: () => api<DeadLetterReplayAll>('/api/v1/dead-letters/replay', { method: 'POST' }),
    onSuccess: (r) => {
      setConfirmAll(false)
      setReplayed(r)
      qc.invalidateQueries({ queryKey: ['dead-letters'] })
    },
  })
  const items = list.data?.pages.flatMap((p) => p.items) ?? []
  const reported = list.data?.pages[0]?.total
  const total = reported !== undefined && reported >= 0 ? reported : undefined

  return (
    <div>
      <PageHeader
        title="Dead letters"
        description="Events that could not be stored after every retry, with the reason. Replay them once the cause is fixed."
        actions={
          items.length > 0 && (
            <Button variant="primary" onClick={() => setConfirmAll(true)}>
              Replay all
            </Button>
          )
        }
      />
      {replayed && (
        <p role="status" className="mb-4 text-sm text-good">
          Replayed {formatCount(replayed.replayed)} event{replayed.replayed === 1 ? '' : 's'}
          {replayed.skipped > 0 && `; ${formatCount(replayed.skipped)} could not be decoded and stayed`}.
        </p>
      )}
      <div className="grid gap-4 xl:grid-cols-2">
        <Panel title={total !== undefined ? `${formatCount(total)} dead letter${total === 1 ? '' : 's'}` : 'Dead letters'}>
          {list.isPending && <Loading />}
          {list.isError && <ErrorState error={list.error} onRetry={() => list.refetch()} />}
          {list.data && items.length === 0 && <EmptyState title="No dead letters">Every accepted event was stored. Failed events show up here with their error.</EmptyState>}
          {items.length > 0 && (
            <ul className="divide-y divide-line">
              {items.map((d) => (
                <li key={d.id}>
                  <button
                    type="button"
                    onClick={() => setSelected(d.id)}
                    aria-current={selected === d.id}
                    className={`flex w-full flex-col gap-1 px-2 py-2 text-left text-sm hover:bg-raised ${selected === d.id ? 'bg-raised' : ''}`}
                  >
                    <span className="flex items-center justify-between gap-2">
                      <span className="truncate font-mono">{d.eventId ?? d.id}</span>
                      <span className="shrink-0 text-xs text-muted">{formatAgo(d.failedAt)}</span>
                    </span>
                    <span className="flex items-center gap-2">
                      <Badge tone="bad">{d.attempts} attempt{d.attempts === 1 ? '' : 's'}</Badge>
                      <span className="truncate text-muted">{eventSummary(d)}</span>
                    </span>
                    <span className="truncate text-xs text-bad">{d.error}</span>
                  </button>
                </li>
              ))}
            </ul>
          )}
          {list.hasNextPage && (
            <Button className="mt-3" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
              {list.isFetchingNextPage ? 'Loading…' : 'Load more'}
            </Button>
          )}
        </Panel>
        {selected && <Detail key={selected} id={selected} onClose={() => setSelected(null)} />}
      </div>
      <ConfirmDialog open={confirmAll} title="Replay every dead letter?" confirmLabel="Replay all" busy={replayAll.isPending} onCancel={() => setConfirmAll(false)} onConfirm={() => replayAll.mutate()}>
        All {total !== undefined ? formatCount(total) : ''} events go back into the buffer and are stored again; those that fail again return here.
        {replayAll.isError && <div className="mt-3"><ErrorState error={replayAll.error} /></div>}
      </ConfirmDialog>
    </div>
  )
}
