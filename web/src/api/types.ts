// Types of evp's API, from the schema.d.ts that openapi-typescript generates from
// internal/openapi/openapi.json (npm run gen:api; npm run check:api fails when it is stale).
import type { components } from './schema'

type S = components['schemas']

export type Analytics = S['Analytics']
export type Metrics = S['Metrics']
export type Health = S['Health']
export type ServiceHealth = S['ServiceHealth']
export type StreamInfo = S['StreamInfo']
export type IngestionMetrics = S['IngestionMetrics']
export type RateHistory = S['RateHistory']
export type RatePoint = S['RatePoint']
export type ErrorCode = S['ErrorCode']

export type Role = S['Role']
export type UserStatus = S['UserStatus']
/** A user as GET /api/users lists it; a session's user (SessionUser) has only id, email and role. */
export type User = Omit<S['User'], 'status' | 'createdAt'> & Partial<Pick<S['User'], 'status' | 'createdAt'>>
export type VerifyResult = S['Session']
export type APIKey = S['APIKey']
export type CreatedAPIKey = S['APIKeyCreated']
export type CodeSent = S['CodeSent']

export type DeadLetter = S['DeadLetter']
export type DeadLetterPage = S['DeadLetterPage']
export type DeadLetterReplayAll = S['DeadLetterReplayAll']

export type EventSource = S['EventSource']
/** A stored event as the events routes return it. */
export type StoredEvent = S['StoredEvent']
/** A page of events, newest first; nextCursor is absent on the last page, and present on a page that may hold fewer events than asked for, even none. */
export type EventPage = S['EventPage']
/**
 * An event as GET /api/v1/events/live sends it: as buffered, accepted but not stored yet, so
 * without processedAt. A stored event is one too.
 */
export type LiveEvent = Omit<StoredEvent, 'processedAt'> & { processedAt?: string }
