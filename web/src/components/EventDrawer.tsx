import { useEffect, useRef, type ReactNode } from 'react'
import { Link } from 'react-router'
import { useQuery } from '@tanstack/react-query'
import { api, ApiError } from '../api/client'
import type { LiveEvent, StoredEvent } from '../api/types'
import { formatDateTime } from '../lib/format'
import { CopyButton } from './CopyButton'
import { Badge, Button, EmptyState, ErrorState, Loading } from './ui'

/**
 * EventDrawer shows one event, whole, in a modal <dialog> at the right of the screen (all of it
 * on a phone): its fields, links to the events of its user, session and type, and its JSON with
 * a copy button. It uses event when given (a row of the list), else asks evp for eventId.
 * An event from Live is not stored yet: it has no processedAt.
 * Escape, the Close button and a click beside it call onClose; closing gives the focus back to
 * where it was (the row's button).
 */
export function EventDrawer({ eventId, event, onClose, hrefFor }: {
  eventId: string | null
  event?: LiveEvent
  onClose: () => void
  /** The Events page's address with one filter changed (the range and other filters kept). */
  hrefFor: (filter: 'userId' | 'sessionId' | 'eventType', value: string) => string
}) {
  const ref = useRef<HTMLDialogElement>(null)
  const open = eventId !== null
  useEffect(() => {
    const d = ref.current
    if (!d) return
    if (open && !d.open) d.showModal?.()
    if (!open && d.open) d.close()
  }, [open])
  return (
    <dialog
      ref={ref}
      aria-labelledby="event-title"
      onCancel={(e) => {
        e.preventDefault()
        onClose()
      }}
      // A click on the backdrop lands on the dialog itself; its content fills it.
      onClick={(e) => e.target === e.currentTarget && onClose()}
      className="m-0 ml-auto h-dvh max-h-none w-full max-w-none border-l border-line bg-panel p-0 text-ink shadow-xl backdrop:bg-black/60 sm:w-[36rem]"
    >
      {eventId !== null && <Content key={eventId} eventId={eventId} event={event} onClose={onClose} hrefFor={hrefFor} />}
    </dialog>
  )
}

function Content({ eventId, event, onClose, hrefFor }: {
  eventId: string
  event?: LiveEvent
  onClose: () => void
  hrefFor: (filter: 'userId' | 'sessionId' | 'eventType', value: string) => string
}) {
  const item = useQuery({
    queryKey: ['events', 'item', eventId],
    queryFn: ({ signal }) => api<StoredEvent>(`/api/v1/events/${encodeURIComponent(eventId)}`, { signal }),
    enabled: !event,
  })
  const e: LiveEvent | undefined = event ?? item.data
  const missing = item.error instanceof ApiError && item.error.status === 404
  const json = e ? JSON.stringify(e, null, 2) : ''
  return (
    <div className="flex h-full flex-col">
      <header className="flex items-center justify-between gap-2 border-b border-line px-4 py-3">
        <h2 id="event-title" className="text-lg font-semibold">
          Event
        </h2>
        <Button onClick={onClose}>Close</Button>
      </header>
      <div className="flex-1 overflow-y-auto px-4 py-4">
        {!e && item.isPending && <Loading label="Loading the event…" />}
        {missing && (
          <EmptyState title="No such event">
            evp has no event with the id <code className="rounded bg-raised px-1 break-all">{eventId}</code>.
          </EmptyState>
        )}
        {item.isError && !missing && <ErrorState error={item.error} onRetry={() => item.refetch()} />}
        {e && (
          <div className="flex flex-col gap-4 text-sm">
            <dl className="grid grid-cols-[7rem_1fr] gap-x-3 gap-y-1.5">
              <Row label="Event id"><span className="font-mono break-all">{e.eventId}</span></Row>
              <Row label="Type">
                <span className="font-mono break-all">{e.eventType}</span>{' '}
                <Link to={hrefFor('eventType', e.eventType)} className="ml-1 text-xs whitespace-nowrap text-accent underline">
                  Only this type
                </Link>
              </Row>
              <Row label="User">
                <span className="font-mono break-all">{e.userId}</span>{' '}
                <Link to={hrefFor('userId', e.userId)} className="ml-1 text-xs whitespace-nowrap text-accent underline">
                  Only this user
                </Link>
              </Row>
              <Row label="Session">
                <span className="font-mono break-all">{e.sessionId}</span>{' '}
                <Link to={hrefFor('sessionId', e.sessionId)} className="ml-1 text-xs whitespace-nowrap text-accent underline">
                  Only this session
                </Link>
              </Row>
              <Row label="Time">{formatDateTime(e.timestamp, true)}</Row>
              <Row label="Received">{formatDateTime(e.receivedAt, true)}</Row>
              <Row label="Stored">{e.processedAt ? formatDateTime(e.processedAt, true) : <span className="text-muted">Not yet: just received, on its way to the store</span>}</Row>
              <Row label="Source">{e.source ? <Badge>{e.source}</Badge> : '—'}</Row>
              <Row label="Priority">{e.priority}</Row>
            </dl>
            <div>
              <div className="mb-1 flex items-center justify-between gap-2">
                <h3 className="text-xs font-semibold text-muted uppercase">JSON</h3>
                <CopyButton text={json} targetId="event-json" label="Copy JSON" />
              </div>
              <pre
                id="event-json"
                tabIndex={0}
                data-testid="event-json"
                className="overflow-auto rounded-lg border border-line bg-raised p-3 font-mono text-xs"
              >
                {json}
              </pre>
            </div>
          </div>
        )}
      </div>
    </div>
  )
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <>
      <dt className="text-muted">{label}</dt>
      <dd className="min-w-0">{children}</dd>
    </>
  )
}
