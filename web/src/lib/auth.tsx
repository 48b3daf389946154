import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'
import { useQuery, useQueryClient } from '@tanstack/react-query'
import { api } from '../api/client'
import type { Role, User } from '../api/types'
import { clearSession, loadSession, onSessionChange, saveSession, sessionRole, type Session } from './session'

interface Auth {
  session: Session | null
  role: Role | null
  user: User | null
  /** Why the last session ended ("expired" after a 401), shown on the sign-in page. */
  endedBecause: string | null
  signOut: () => void
}

const AuthContext = createContext<Auth | null>(null)

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(() => loadSession())
  const [endedBecause, setEndedBecause] = useState<string | null>(null)
  const qc = useQueryClient()

  useEffect(
    () =>
      onSessionChange((reason) => {
        const s = loadSession()
        setSession(s)
        if (!s) {
          setEndedBecause(reason ?? null)
          qc.clear()
        } else {
          setEndedBecause(null)
        }
      }),
    [qc],
  )

  // A JWT session asks who it is, so a changed role or a suspension shows without a new sign-in.
  const me = useQuery({
    queryKey: ['me', session?.kind === 'jwt' ? session.token : null],
    queryFn: ({ signal }) => api<User>('/api/auth/me', { signal }),
    enabled: session?.kind === 'jwt',
    staleTime: 60_000,
    retry: false,
  })

  useEffect(() => {
    if (session?.kind === 'jwt' && me.data && (me.data.role !== session.user.role || me.data.email !== session.user.email)) {
      saveSession({ ...session, user: { ...session.user, ...me.data } })
    }
  }, [me.data, session])

  const value = useMemo<Auth>(
    () => ({
      session,
      role: sessionRole(session),
      user: session?.kind === 'jwt' ? { ...session.user, ...(me.data ?? {}) } : null,
      endedBecause,
      signOut: () => clearSession('signed-out'),
    }),
    [session, me.data, endedBecause],
  )
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>
}

export function useAuth(): Auth {
  const a = useContext(AuthContext)
  if (!a) throw new Error('useAuth outside AuthProvider')
  return a
}
