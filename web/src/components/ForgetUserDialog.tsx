import { useEffect, useId, useRef, useState, type FormEvent } from 'react'
import { ApiError } from '../api/client'
import { Button, ErrorState, inputClass } from './ui'

/**
 * ForgetUserDialog asks an ADMIN to confirm the deletion of every stored event of one user
 * (an erasure request), in a native modal <dialog> as ConfirmDialog does: it says what happens,
 * and its Delete button works only once the user id is typed exactly. Focus moves to that
 * field on opening and back to where it was on closing; Escape cancels. The deletion itself
 * is the caller's (onConfirm; busy and error while it runs and when it failed).
 */
export function ForgetUserDialog({ open, userId, busy, error, onConfirm, onCancel }: {
  open: boolean
  userId: string
  busy: boolean
  error: unknown
  onConfirm: () => void
  onCancel: () => void
}) {
  const ref = useRef<HTMLDialogElement>(null)
  const opener = useRef<Element | null>(null)
  const titleId = useId()
  const descId = useId()
  useEffect(() => {
    const d = ref.current
    if (!d) return
    if (open && !d.open) {
      opener.current = document.activeElement
      d.showModal?.()
      d.querySelector<HTMLInputElement>('input')?.focus()
    }
    if (!open && d.open) {
      d.close()
      const back = opener.current
      opener.current = null
      if (back instanceof HTMLElement && back.isConnected) back.focus()
    }
  }, [open])
  return (
    <dialog
      ref={ref}
      onCancel={(e) => {
        e.preventDefault()
        onCancel()
      }}
      onKeyDown={(e) => {
        if (e.key !== 'Escape') return
        e.preventDefault()
        onCancel()
      }}
      aria-labelledby={titleId}
      aria-describedby={descId}
      className="m-auto max-h-[calc(100dvh-2rem)] w-[min(32rem,calc(100vw-2rem))] overflow-y-auto rounded-xl border border-line bg-panel p-5 text-ink backdrop:bg-black/60"
      data-testid="forget-user-dialog"
    >
      {open && <Body userId={userId} busy={busy} error={error} onConfirm={onConfirm} onCancel={onCancel} titleId={titleId} descId={descId} />}
    </dialog>
  )
}

/** The dialog's content, mounted at each opening so that the typed id starts empty. */
function Body({ userId, busy, error, onConfirm, onCancel, titleId, descId }: {
  userId: string
  busy: boolean
  error: unknown
  onConfirm: () => void
  onCancel: () => void
  titleId: string
  descId: string
}) {
  const [typed, setTyped] = useState('')
  const inputId = useId()
  const matches = typed === userId
  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (matches && !busy) onConfirm()
  }
  return (
    <form onSubmit={submit}>
      <h2 id={titleId} className="text-lg font-semibold">
        Delete every event of this user?
      </h2>
      <div id={descId} className="mt-2 flex flex-col gap-2 text-sm text-muted">
        <p>
          Every stored event whose user id is exactly <code className="rounded bg-raised px-1 font-mono break-all text-ink">{userId}</code> is deleted: of any time and any type,
          not only those the filters show, and the user&apos;s dead letters too.
        </p>
        <p>Analytics stop counting them; searches and exports no longer show them.</p>
        <p className="font-medium text-bad">This cannot be undone.</p>
        <p>Events of this user still being sent (or waiting in evp&apos;s buffer) are stored afterwards: delete again once the sending has stopped.</p>
      </div>
      <div className="mt-4 flex flex-col gap-1">
        <label htmlFor={inputId} className="text-xs font-medium text-muted">
          Type the user id to confirm
        </label>
        <input
          id={inputId}
          className={`${inputClass} font-mono`}
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
          autoComplete="off"
          autoCapitalize="none"
          autoCorrect="off"
          spellCheck={false}
        />
      </div>
      {error != null && (
        <div className="mt-3">
          <ForgetError error={error} />
        </div>
      )}
      {busy && (
        <p className="mt-3 text-sm text-muted">Deleting… It goes on even if this dialog is closed.</p>
      )}
      <div className="mt-5 flex flex-wrap justify-end gap-2">
        <Button onClick={onCancel}>{busy ? 'Close' : 'Cancel'}</Button>
        <Button type="submit" variant="danger" disabled={!matches || busy}>
          {busy ? 'Deleting…' : 'Delete'}
        </Button>
      </div>
    </form>
  )
}

/** Why the deletion failed; a 403 says who may do it. */
export function ForgetError({ error }: { error: unknown }) {
  if (!(error instanceof ApiError) || error.status !== 403) return <ErrorState error={error} />
  return (
    <div role="alert" className="rounded-xl border border-bad/50 bg-bad/10 p-4" data-testid="error-state">
      <div className="font-semibold text-bad">Not allowed</div>
      <div className="mt-1 text-sm text-ink">Only an ADMIN may delete a user&apos;s events (evp: {error.message}).</div>
    </div>
  )
}
