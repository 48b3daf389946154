// Types of evp's API. Routes described in internal/openapi/openapi.json take their types from
// the generated schema.d.ts (npm run gen:api); the accounts routes are typed here from
// API_CONTRACT.md until they appear in the document.
import type { components } from './schema'

type S = components['schemas']

export type Analytics = S['Analytics']
export type Metrics = S['Metrics']
export type Health = S['Health']
export type ServiceHealth = S['ServiceHealth']
export type StreamInfo = S['StreamInfo']
export type IngestionMetrics = S['IngestionMetrics']
export type ErrorCode = S['ErrorCode']

export type Role = 'ADMIN' | 'OPERATOR' | 'VIEWER' | 'API_CLIENT'
export type UserStatus = 'ACTIVE' | 'INACTIVE' | 'SUSPENDED' | 'PENDING_VERIFICATION'

export interface User {
  id: string
  email: string
  role: Role
  status?: UserStatus
  createdAt?: string
  lastLoginAt?: string | null
}

export interface VerifyResult {
  token: string
  user: User
}

export interface APIKey {
  id: string
  name: string
  prefix: string
  last4: string
  createdAt: string
  lastUsedAt?: string | null
  expiresAt?: string | null
  revokedAt?: string | null
}

export interface CreatedAPIKey {
  apiKey: string
  message: string
  key?: APIKey
}

export type DeadLetter = S['DeadLetter']
export type DeadLetterPage = S['DeadLetterPage']
export type DeadLetterReplayAll = S['DeadLetterReplayAll']
