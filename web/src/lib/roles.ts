import type { Role } from '../api/types'

const rank: Record<Role, number> = { API_CLIENT: 0, VIEWER: 1, OPERATOR: 2, ADMIN: 3 }

/** allows reports whether role has at least the rights of need. */
export function allows(role: Role | null | undefined, need: Role): boolean {
  if (!role) return false
  return (rank[role] ?? 0) >= rank[need]
}
