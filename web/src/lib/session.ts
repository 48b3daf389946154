// The signed-in session, kept in localStorage so it survives reloads: a JWT from the email
// sign-in, or an API key (read-only access to analytics and metrics).
import type { Role, User } from '../api/types'

export type Session =
  | { kind: 'jwt'; token: string; user: User }
  | { kind: 'apiKey'; key: string }

const KEY = 'evp.session'
const listeners = new Set<(reason?: string) => void>()

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(KEY)
    if (!raw) return null
    const s = JSON.parse(raw) as Session
    if (s.kind === 'jwt' && typeof s.token === 'string' && s.user) {
      if (tokenExpired(s.token)) {
        localStorage.removeItem(KEY)
        return null
      }
      return s
    }
    if (s.kind === 'apiKey' && typeof s.key === 'string') return s
  } catch {
    // unreadable: treat as signed out
  }
  return null
}

export function saveSession(s: Session): void {
  localStorage.setItem(KEY, JSON.stringify(s))
  listeners.forEach((l) => l())
}

export function clearSession(reason?: string): void {
  localStorage.removeItem(KEY)
  listeners.forEach((l) => l(reason))
}

/** onSessionChange calls fn when the session is saved or cleared; returns the unsubscribe. */
export function onSessionChange(fn: (reason?: string) => void): () => void {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

/** tokenExpired reads a JWT's exp claim (without verifying it: the server does that). */
export function tokenExpired(token: string, now = Date.now()): boolean {
  const part = token.split('.')[1]
  if (!part) return false
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='))
    const exp = (JSON.parse(json) as { exp?: number }).exp
    return typeof exp === 'number' && exp * 1000 <= now
  } catch {
    return false
  }
}

/** sessionRole is what the dashboard shows for a session; an API key reads like a viewer. */
export function sessionRole(s: Session | null): Role | null {
  if (!s) return null
  return s.kind === 'jwt' ? s.user.role : 'VIEWER'
}
