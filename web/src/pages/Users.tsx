import { useState, type FormEvent } from 'react'
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { api } from '../api/client'
import type { Role, User, UserStatus } from '../api/types'
import { Badge, Button, ConfirmDialog, EmptyState, ErrorState, Field, inputClass, Loading, PageHeader, Panel } from '../components/ui'
import { useAuth } from '../lib/auth'
import { formatAgo, formatDateTime } from '../lib/format'

const roles: Role[] = ['VIEWER', 'OPERATOR', 'ADMIN']

export function Users() {
  const qc = useQueryClient()
  const { user: me } = useAuth()
  const users = useQuery({ queryKey: ['users'], queryFn: ({ signal }) => api<User[]>('/api/users', { signal }) })
  const [email, setEmail] = useState('')
  const [role, setRole] = useState<Role>('VIEWER')
  const [suspending, setSuspending] = useState<User | null>(null)
  const [invited, setInvited] = useState('')

  const invite = useMutation({
    mutationFn: () => api<User>('/api/users', { method: 'POST', body: { email: email.trim(), role } }),
    onSuccess: (u) => {
      setInvited(u?.email ?? email.trim())
      setEmail('')
      qc.invalidateQueries({ queryKey: ['users'] })
    },
  })
  const update = useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: { role?: Role; status?: UserStatus } }) => api<User>(`/api/users/${encodeURIComponent(id)}`, { method: 'PATCH', body: patch }),
    onSuccess: () => {
      setSuspending(null)
      qc.invalidateQueries({ queryKey: ['users'] })
    },
  })

  const onInvite = (e: FormEvent) => {
    e.preventDefault()
    setInvited('')
    invite.mutate()
  }

  return (
    <div>
      <PageHeader title="Users" description="Who can sign in, and what they may do: viewers read analytics, operators also manage API keys and dead letters, admins also manage users." />
      <Panel title="Invite" className="mb-4">
        <form onSubmit={onInvite} className="flex flex-wrap items-end gap-3">
          <div className="min-w-56 flex-1">
            <Field label="Email" htmlFor="inviteEmail">
              <input id="inviteEmail" type="email" required className={inputClass} value={email} onChange={(e) => setEmail(e.target.value)} />
            </Field>
          </div>
          <div className="w-40">
            <Field label="Role" htmlFor="inviteRole">
              <select id="inviteRole" className={inputClass} value={role} onChange={(e) => setRole(e.target.value as Role)}>
                {roles.map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            </Field>
          </div>
          <Button type="submit" variant="primary" disabled={invite.isPending || !email.trim()}>
            {invite.isPending ? 'Inviting…' : 'Invite'}
          </Button>
        </form>
        {invite.isError && <div className="mt-3"><ErrorState error={invite.error} /></div>}
        {invited && (
          <p role="status" className="mt-3 text-sm text-good">
            {invited} can now sign in with their email.
          </p>
        )}
      </Panel>
      <Panel title="Users">
        {users.isPending && <Loading />}
        {users.isError && <ErrorState error={users.error} onRetry={() => users.refetch()} />}
        {users.data && users.data.length === 0 && <EmptyState title="No users yet" />}
        {update.isError && <div className="mb-3"><ErrorState error={update.error} /></div>}
        {users.data && users.data.length > 0 && (
          <div className="relative overflow-x-auto">
            <table className="stack w-full text-left text-sm" data-testid="users">
              <thead className="text-xs text-muted uppercase">
                <tr>
                  <th scope="col" className="py-2 pr-3 font-medium">Email</th>
                  <th scope="col" className="py-2 pr-3 font-medium">Role</th>
                  <th scope="col" className="py-2 pr-3 font-medium">Status</th>
                  <th scope="col" className="hidden py-2 pr-3 font-medium md:table-cell">Joined</th>
                  <th scope="col" className="hidden py-2 pr-3 font-medium md:table-cell">Last sign-in</th>
                  <th scope="col" className="py-2"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                {users.data.map((u) => {
                  const self = me?.id === u.id
                  return (
                    <tr key={u.id} className="border-t border-line">
                      <td data-label="Email" className="max-w-64 truncate py-2 pr-3">
                        <span>
                          {u.email} {self && <Badge>you</Badge>}
                        </span>
                      </td>
                      <td data-label="Role" className="py-2 pr-3">
                        <label className="sr-only" htmlFor={`role-${u.id}`}>
                          Role of {u.email}
                        </label>
                        <select
                          id={`role-${u.id}`}
                          className="rounded-lg border border-control bg-raised px-2 py-1"
                          value={u.role}
                          disabled={self || update.isPending}
                          onChange={(e) => update.mutate({ id: u.id, patch: { role: e.target.value as Role } })}
                        >
                          {[...new Set([...roles, u.role])].map((r) => (
                            <option key={r}>{r}</option>
                          ))}
                        </select>
                      </td>
                      <td data-label="Status" className="py-2 pr-3">
                        <Badge tone={u.status === 'ACTIVE' ? 'good' : u.status === 'SUSPENDED' ? 'bad' : 'muted'}>{u.status?.toLowerCase().replace('_', ' ') ?? '—'}</Badge>
                      </td>
                      <td data-label="Joined" className="hidden py-2 pr-3 whitespace-nowrap md:table-cell">{formatDateTime(u.createdAt)}</td>
                      <td data-label="Last sign-in" className="hidden py-2 pr-3 whitespace-nowrap md:table-cell">{formatAgo(u.lastLoginAt)}</td>
                      <td className="py-2 text-right">
                        {!self &&
                          (u.status === 'SUSPENDED' ? (
                            <Button onClick={() => update.mutate({ id: u.id, patch: { status: 'ACTIVE' } })} disabled={update.isPending}>
                              Reactivate
                            </Button>
                          ) : (
                            <Button variant="danger" onClick={() => setSuspending(u)} aria-label={`Suspend ${u.email}`}>
                              Suspend
                            </Button>
                          ))}
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
        open={suspending !== null}
        title={`Suspend ${suspending?.email ?? ''}?`}
        confirmLabel="Suspend"
        busy={update.isPending}
        onCancel={() => setSuspending(null)}
        onConfirm={() => suspending && update.mutate({ id: suspending.id, patch: { status: 'SUSPENDED' } })}
      >
        They are signed out and cannot sign in until reactivated.
      </ConfirmDialog>
    </div>
  )
}
