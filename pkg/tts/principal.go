package tts

import "context"

// Role is what an account may do.
type Role string

// Roles. An admin sees and steers every job; a user sees only their own.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleUser }

// Principal is who makes a request: set by the API's authentication and
// read by the services, which scope what it may see. A request without a
// principal comes from inside the program or from an API running open
// (development mode) and is not scoped.
type Principal struct {
	UserID string
	Email  string
	Role   Role
	KeyID  string // the API key used, "" for a token
}

// Admin reports whether the principal may see everything.
func (p Principal) Admin() bool { return p.Role == RoleAdmin }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Owner returns the user id that new jobs created under ctx belong to ("" when
// unscoped).
func Owner(ctx context.Context) string {
	p, _ := PrincipalFrom(ctx)
	return p.UserID
}

// CanSee reports whether the principal in ctx may see an object owned by
// userID: admins and unscoped contexts see everything, a user only their own.
func CanSee(ctx context.Context, userID string) bool {
	p, ok := PrincipalFrom(ctx)
	return !ok || p.Admin() || (p.UserID != "" && p.UserID == userID)
}
