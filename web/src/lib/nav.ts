import type { Role } from '../api/types'

export interface NavItem {
  to: string
  label: string
  need: Role
  /** Pages that need a signed-in user (a JWT), not only an API key. */
  user?: boolean
}

export const navItems: NavItem[] = [
  { to: '/', label: 'Analytics', need: 'VIEWER' },
  { to: '/events', label: 'Events', need: 'VIEWER' },
  { to: '/live', label: 'Live', need: 'VIEWER' },
  { to: '/api-keys', label: 'API keys', need: 'OPERATOR', user: true },
  { to: '/dead-letters', label: 'Dead letters', need: 'OPERATOR', user: true },
  { to: '/users', label: 'Users', need: 'ADMIN', user: true },
]
