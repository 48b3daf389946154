import { explain } from '../api/client'
import { formatClock, formatCount, formatDuration } from '../lib/format'
import { MAX_LIVE, newEvents, type Live } from '../lib/liveEvents'
import { Button, ErrorState } from './ui'

/**
 * LiveBar shows the state of the Events page's Live mode above its list: live, paused (with
 * the count of new events waiting), reconnecting, or stopped (evp dropped the stream, or
 * refused it) with a way to go on. It is not a live region: the page announces Live's state
 * and counts at a calmer pace (Live.announcement).
 */
export function LiveBar({ live }: { live: Live }) {
  const { status, paused } = live
  const stopped = status.kind === 'dropped' || status.kind === 'failed'
  const label = stopped
    ? 'Live stopped'
    : status.kind === 'connecting'
      ? 'Connecting…'
      : status.kind === 'reconnecting'
        ? `Reconnecting (attempt ${status.attempt})…`
        : paused
          ? 'Paused'
          : 'Live'
  const dot = stopped ? 'bg-bad' : status.kind === 'live' && !paused ? 'bg-good motion-safe:animate-pulse' : 'bg-warn'
  let detail = ''
  if (status.kind === 'reconnecting') {
    const why = status.error ? explain(status.error).title : 'The stream ended'
    detail = `${why}; next try in ${formatDuration(Math.round(status.delay / 1000))}.`
  } else if (status.kind === 'live' && !paused) {
    detail = live.lastAt !== null ? `Last event received at ${formatClock(live.lastAt)}` : 'Waiting for new events that match the filters'
  }

  return (
    <div className="mb-3 flex flex-col gap-3" data-testid="live-bar">
      <div className="flex flex-wrap items-center gap-x-3 gap-y-2 rounded-lg border border-line bg-raised px-3 py-2 text-sm">
        <span className="inline-flex items-center gap-2 font-medium" data-testid="live-status">
          <span aria-hidden="true" className={`inline-block h-2.5 w-2.5 rounded-full ${dot}`} />
          {label}
        </span>
        {detail && <span className="text-muted">{detail}</span>}
        {paused && (
          <span className="font-medium" data-testid="live-waiting">
            {newEvents(live.waitingCount)}
            {live.waitingCount > MAX_LIVE && <span className="font-normal text-muted"> (the newest {formatCount(MAX_LIVE)} kept)</span>}
          </span>
        )}
        <span className="ml-auto flex flex-wrap gap-2">
          {status.kind === 'reconnecting' && <Button onClick={live.retry}>Reconnect now</Button>}
          {paused ? (
            <Button variant="primary" onClick={live.resume} title="Show the new events at the top of the list and go on">
              Resume
            </Button>
          ) : (
            <Button onClick={live.pause} title="Keep the list still; new events are counted and shown when you resume">
              Pause
            </Button>
          )}
        </span>
      </div>
      {live.rows.length >= MAX_LIVE && (
        <p className="text-xs text-muted">The newest {formatCount(MAX_LIVE)} live events are kept; older ones are in the list when Live is turned off.</p>
      )}
      {status.kind === 'dropped' && (
        <div role="alert" className="rounded-xl border border-warn/50 bg-warn/10 p-4" data-testid="live-dropped">
          <div className="font-semibold text-warn">Live stopped: evp dropped this page's stream</div>
          <div className="mt-1 text-sm text-ink">
            {status.reason.charAt(0).toUpperCase() + status.reason.slice(1)}. Events that arrived since are not shown: reconnect to go on from now, or turn Live off to
            reload the list.
          </div>
          <Button className="mt-3" onClick={live.retry}>
            Reconnect
          </Button>
        </div>
      )}
      {status.kind === 'failed' && <ErrorState error={status.error} onRetry={live.retry} />}
    </div>
  )
}
