package accounts

// Permission is one kind of action a route needs.
type Permission string

// The permissions routes ask for.
const (
	PermIngest            Permission = "ingest"             // send events (API keys)
	PermReadAnalytics     Permission = "analytics:read"     // analytics, metrics, stats
	PermManageKeys        Permission = "keys:manage"        // create, list, revoke API keys
	PermManageDeadLetters Permission = "deadletters:manage" // inspect, replay, delete dead letters
	PermManageUsers       Permission = "users:manage"       // invite, change role, suspend
)

// rolePermissions is the whole access policy for signed-in users: each role's rights.
var rolePermissions = map[Role][]Permission{
	RoleAdmin:     {PermIngest, PermReadAnalytics, PermManageKeys, PermManageDeadLetters, PermManageUsers},
	RoleOperator:  {PermIngest, PermReadAnalytics, PermManageKeys, PermManageDeadLetters},
	RoleViewer:    {PermReadAnalytics},
	RoleAPIClient: {PermIngest},
}

// keyPermissions are the rights of an API key: ingestion, and the read-only analytics and
// metrics routes. A key never manages anything, whoever owns it.
var keyPermissions = []Permission{PermIngest, PermReadAnalytics}

// Allows reports whether a user with role r may do p.
func (r Role) Allows(p Permission) bool { return contains(rolePermissions[r], p) }

// KeyAllows reports whether an API key may do p.
func KeyAllows(p Permission) bool { return contains(keyPermissions, p) }

func contains(ps []Permission, p Permission) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
