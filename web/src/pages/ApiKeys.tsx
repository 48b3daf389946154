import { useState, type FormEvent } from 'react'
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { api, ApiError } from '../api/client'
import type { APIKey, CreatedAPIKey } from '../api/types'
import { CopyButton } from '../components/CopyButton'
import { Badge, Button, ConfirmDialog, EmptyState, ErrorState, Field, inputClass, Loading, PageHeader, Panel } from '../components/ui'
import { formatAgo, formatDateTime } from '../lib/format'

function keyStatus(k: APIKey, now = Date.now()): { label: string; tone: 'good' | 'bad' | 'muted' } {
  if (k.revokedAt) return { label: 'revoked', tone: 'bad' }
  if (k.expiresAt && new Date(k.expiresAt).getTime() <= now) return { label: 'expired', tone: 'muted' }
  return { label: 'active', tone: 'good' }
}

/** What a key may do: an ingest-only key only sends events; others also read analytics and metrics. */
function keyScope(k: APIKey): { label: string; tone: 'accent' | 'muted' } {
  return k.ingestOnly ? { label: 'Ingest only', tone: 'accent' } : { label: 'Ingest + read', tone: 'muted' }
}

/** The origins typed in the form: one per line, or separated by spaces or commas (evp checks them). */
function parseOrigins(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean)
}

/** Whether err is evp's 400 about the allowed origins (one is not an origin, or too many). */
function originsRefused(err: unknown): boolean {
  if (!(err instanceof ApiError) || err.status !== 400) return false
  return Array.isArray(err.details) && err.details.some((d: unknown) => (d as { path?: unknown } | null)?.path === 'allowedOrigins')
}

/** The web origins from which browsers may send events with a key; "Any origin" when it names none. */
function KeyOrigins({ origins }: { origins?: string[] }) {
  if (!origins?.length) return <span className="text-xs text-muted">Any origin</span>
  return (
    <ul aria-label="Origins" className="flex max-w-72 flex-col font-mono text-xs wrap-anywhere text-muted max-sm:items-end">
      {origins.map((o) => (
        <li key={o}>{o}</li>
      ))}
    </ul>
  )
}

export function ApiKeys() {
  const qc = useQueryClient()
  const keys = useQuery({ queryKey: ['api-keys'], queryFn: ({ signal }) => api<APIKey[]>('/api/auth/api-keys', { signal }) })
  const [name, setName] = useState('')
  const [days, setDays] = useState('')
  const [ingestOnly, setIngestOnly] = useState(false)
  const [origins, setOrigins] = useState('')
  const [created, setCreated] = useState<CreatedAPIKey | null>(null)
  const [revoking, setRevoking] = useState<APIKey | null>(null)

  const create = useMutation({
    mutationFn: () => {
      const allowedOrigins = parseOrigins(origins)
      return api<CreatedAPIKey>('/api/auth/api-key', {
        method: 'POST',
        body: { name: name.trim(), ...(days ? { expiresInDays: Number(days) } : {}), ingestOnly, ...(allowedOrigins.length ? { allowedOrigins } : {}) },
      })
    },
    onSuccess: (r) => {
      setCreated(r)
      setName('')
      setIngestOnly(false)
      setOrigins('')
      qc.invalidateQueries({ queryKey: ['api-keys'] })
    },
  })
  const revoke = useMutation({
    mutationFn: (id: string) => api<unknown>(`/api/auth/api-keys/${encodeURIComponent(id)}`, { method: 'DELETE' }),
    onSuccess: (_r, id) => {
      setRevoking(null)
      // A revoked key is of no use: stop showing it.
      setCreated((c) => (c?.key.id === id ? null : c))
      qc.invalidateQueries({ queryKey: ['api-keys'] })
    },
  })

  const onCreate = (e: FormEvent) => {
    e.preventDefault()
    setCreated(null)
    create.mutate()
  }

  return (
    <div>
      <PageHeader title="API keys" description="Keys let clients send events (x-api-key header). evp keeps only a hash: a key is shown once, when it is created." />
      <Panel title="Create a key" className="mb-4">
        <form onSubmit={onCreate} className="flex flex-col gap-3">
          <div className="flex flex-wrap items-end gap-3">
            <div className="min-w-56 flex-1">
              <Field label="Name" htmlFor="keyName" hint="Say where it is used, e.g. “checkout service, production”.">
                <input id="keyName" required maxLength={100} className={inputClass} value={name} onChange={(e) => setName(e.target.value)} />
              </Field>
            </div>
            <div className="w-40">
              <Field label="Expires" htmlFor="keyExpiry" hint="&nbsp;">
                <select id="keyExpiry" className={inputClass} value={days} onChange={(e) => setDays(e.target.value)}>
                  <option value="">Never</option>
                  <option value="30">In 30 days</option>
                  <option value="90">In 90 days</option>
                  <option value="365">In a year</option>
                </select>
              </Field>
            </div>
            <div className="flex flex-col gap-1">
              <div className="flex min-h-9 items-center gap-2">
                <input
                  id="keyIngestOnly"
                  type="checkbox"
                  className="h-4 w-4 accent-[var(--accent)]"
                  checked={ingestOnly}
                  onChange={(e) => setIngestOnly(e.target.checked)}
                  aria-describedby="keyIngestOnlyHint"
                />
                <label htmlFor="keyIngestOnly" className="text-sm font-medium">
                  Ingest only
                </label>
              </div>
              <div id="keyIngestOnlyHint" className="text-xs text-muted sm:whitespace-nowrap">
                May only send events: safe to put in a web page or a mobile app.
              </div>
            </div>
          </div>
          <div className="flex flex-wrap items-end gap-3">
            <div className="min-w-56 flex-1">
              <Field
                label="Allowed origins"
                htmlFor="keyOrigins"
                hint={
                  <span id="keyOriginsHint">
                    One per line. Browsers on other origins may not send events with this key; servers and apps are not limited. Empty: any origin.
                  </span>
                }
              >
                <textarea
                  id="keyOrigins"
                  rows={2}
                  spellCheck={false}
                  autoCapitalize="none"
                  autoCorrect="off"
                  className={`${inputClass} resize-y font-mono aria-invalid:border-bad`}
                  placeholder={'https://shop.example\nhttp://localhost:8080'}
                  value={origins}
                  onChange={(e) => setOrigins(e.target.value)}
                  aria-describedby="keyOriginsHint"
                  aria-invalid={originsRefused(create.error) || undefined}
                />
              </Field>
            </div>
            <Button type="submit" variant="primary" className="mb-5" disabled={create.isPending || !name.trim()}>
              {create.isPending ? 'Creating…' : 'Create key'}
            </Button>
          </div>
        </form>
        {create.isError && <ErrorState error={create.error} />}
        {created && (
          <div role="status" className="mt-2 rounded-xl border border-warn/60 bg-warn/10 p-4" data-testid="new-key">
            <div className="font-semibold text-warn">Copy this key now. It will not be shown again.</div>
            <p className="mt-1 text-sm text-muted">Store it in your secret manager. If it is lost, revoke it and create another.</p>
            {created.key.ingestOnly && (
              <p className="mt-1 text-sm text-ink">
                This key is ingest-only: it may only send events (<code className="font-mono">POST /api/v1/events</code> and <code className="font-mono">/batch</code>); evp
                refuses it everywhere else.
              </p>
            )}
            <div className="mt-3 flex flex-wrap items-center gap-2">
              <code id="new-key-value" className="min-w-[min(100%,18rem)] flex-1 rounded-lg border border-line bg-raised px-3 py-2 font-mono text-sm break-all" data-testid="new-key-value">
                {created.apiKey}
              </code>
              <CopyButton text={created.apiKey} targetId="new-key-value" label="Copy key" />
              <Button variant="ghost" onClick={() => setCreated(null)}>
                I have stored it
              </Button>
            </div>
          </div>
        )}
      </Panel>

      <Panel title="Keys">
        {keys.isPending && <Loading />}
        {keys.isError && <ErrorState error={keys.error} onRetry={() => keys.refetch()} />}
        {keys.data && keys.data.length === 0 && <EmptyState title="No API keys yet">Create one above to start sending events.</EmptyState>}
        {keys.data && keys.data.length > 0 && (
          <div className="relative overflow-x-auto">
            <table className="stack w-full text-left text-sm" data-testid="api-keys">
              <thead className="text-xs text-muted uppercase">
                <tr>
                  <th scope="col" className="py-2 pr-3 font-medium">Name</th>
                  <th scope="col" className="py-2 pr-3 font-medium">Key</th>
                  <th scope="col" className="py-2 pr-3 font-medium">Status</th>
                  <th scope="col" className="py-2 pr-3 font-medium">Access</th>
                  <th scope="col" className="hidden py-2 pr-3 font-medium md:table-cell">Created</th>
                  <th scope="col" className="hidden py-2 pr-3 font-medium md:table-cell">Last used</th>
                  <th scope="col" className="hidden py-2 pr-3 font-medium lg:table-cell">Expires</th>
                  <th scope="col" className="py-2"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                {keys.data.map((k) => {
                  const s = keyStatus(k)
                  const scope = keyScope(k)
                  return (
                    <tr key={k.id} className="border-t border-line">
                      <td data-label="Name" className="py-2 pr-3 font-medium">{k.name}</td>
                      <td data-label="Key" className="py-2 pr-3 font-mono whitespace-nowrap text-muted">
                        {k.prefix}…{k.last4}
                      </td>
                      <td data-label="Status" className="py-2 pr-3"><Badge tone={s.tone}>{s.label}</Badge></td>
                      <td data-label="Access" className="py-2 pr-3">
                        <div className="flex flex-col items-start gap-1 max-sm:items-end">
                          <span className="whitespace-nowrap"><Badge tone={scope.tone}>{scope.label}</Badge></span>
                          <KeyOrigins origins={k.allowedOrigins} />
                        </div>
                      </td>
                      <td data-label="Created" className="hidden py-2 pr-3 whitespace-nowrap md:table-cell">{formatDateTime(k.createdAt)}</td>
                      <td data-label="Last used" className="hidden py-2 pr-3 whitespace-nowrap md:table-cell">{formatAgo(k.lastUsedAt)}</td>
                      <td data-label="Expires" className="hidden py-2 pr-3 whitespace-nowrap lg:table-cell">{k.expiresAt ? formatDateTime(k.expiresAt) : 'never'}</td>
                      <td className="py-2 text-right">
                        {s.label !== 'revoked' && (
                          <Button variant="danger" onClick={() => setRevoking(k)} aria-label={`Revoke ${k.name}`}>
                            Revoke
                          </Button>
                        )}
                      </td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          </div>
        )}
      </Panel>
      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke “${revoking?.name ?? ''}”?`}
        confirmLabel="Revoke key"
        busy={revoke.isPending}
        onCancel={() => {
          setRevoking(null)
          revoke.reset()
        }}
        onConfirm={() => revoking && revoke.mutate(revoking.id)}
      >
        Clients using {revoking?.prefix}…{revoking?.last4} are refused from now on (within a minute on every evp process). This cannot be undone.
        {revoke.isError && <div className="mt-3"><ErrorState error={revoke.error} /></div>}
      </ConfirmDialog>
    </div>
  )
}
