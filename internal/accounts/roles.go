package accounts

import "strings"

// Permission is one kind of action a route needs.
type Permission string

// The permissions routes ask for.
const (
	PermIngest            Permission = "ingest"             // send events (API keys)
	PermIngestStats       Permission = "ingest:stats"       // read ingestion counts (GET /api/v1/events/stats)
	PermReadAnalytics     Permission = "analytics:read"     // analytics, metrics, stats
	PermReadEvents        Permission = "events:read"        // the stored events themselves: search, export
	PermImport            Permission = "events:import"      // load events exported from evp
	PermForgetUsers       Permission = "events:forget"      // delete every event of one user (erasure)
	PermManageKeys        Permission = "keys:manage"        // create, list, revoke API keys
	PermManageDeadLetters Permission = "deadletters:manage" // inspect, replay, delete dead letters
	PermManageUsers       Permission = "users:manage"       // invite, change role, suspend
)

// rolePermissions is the whole access policy for signed-in users: each role's rights.
var rolePermissions = map[Role][]Permission{
	RoleAdmin:     {PermIngest, PermIngestStats, PermReadAnalytics, PermReadEvents, PermImport, PermForgetUsers, PermManageKeys, PermManageDeadLetters, PermManageUsers},
	RoleOperator:  {PermIngest, PermIngestStats, PermReadAnalytics, PermReadEvents, PermImport, PermManageKeys, PermManageDeadLetters},
	RoleViewer:    {PermReadAnalytics, PermReadEvents},
	RoleAPIClient: {PermIngest, PermIngestStats},
}

// keyPermissions are the rights of an API key: ingestion and import, and the read-only
// analytics, metrics and events routes. A key never manages anything, whoever owns it. An
// ingest-only key, made to be shipped in a web page or an app, may only send events.
var keyPermissions = []Permission{PermIngest, PermIngestStats, PermImport, PermReadAnalytics, PermReadEvents}

// Allows reports whether a user with role r may do p.
func (r Role) Allows(p Permission) bool { return contains(rolePermissions[r], p) }

// AllowsOrigin reports whether a request with the Origin header origin may use k: always
// when k names no origins or the request names none (it does not come from a browser's
// page), otherwise when origin is one of k's.
func (k *APIKey) AllowsOrigin(origin string) bool {
	if len(k.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	for _, o := range k.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// Allows reports whether the API key k may do p.
func (k *APIKey) Allows(p Permission) bool {
	if k.IngestOnly {
		return p == PermIngest
	}
	return contains(keyPermissions, p)
}

func contains(ps []Permission, p Permission) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
