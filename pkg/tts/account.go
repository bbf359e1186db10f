package tts

import (
	"context"
	"time"
)

// User is an account. PasswordHash is a bcrypt hash; it never leaves the
// server.
type User struct {
	ID           string
	Email        string // stored lower-case; unique
	Role         Role
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLoginAt  *time.Time
	// TokenVersion is carried by the account's login tokens; raising it
	// (log-out, password change, disabling) ends every session at once.
	TokenVersion int
}

// APIKey is a long-lived credential of a user, for scripts and apps. Only a
// hash of its secret is stored; the secret is shown once, at creation.
type APIKey struct {
	ID         string
	UserID     string
	UserEmail  string // filled on reads
	Name       string
	Prefix     string // the secret's first characters, to recognise it
	Hash       string // hex SHA-256 of the secret
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// UserPatch changes a user; nil fields stay as they are.
type UserPatch struct {
	Role         *Role
	Disabled     *bool
	PasswordHash *string
	// EndSessions raises TokenVersion.
	EndSessions bool
}

// AccountStore persists users and API keys.
type AccountStore interface {
	// CreateUser inserts a user (ECONFLICT when the email is taken).
	CreateUser(ctx context.Context, u *User) (*User, error)
	// FindUser returns a user by id (ENOTFOUND).
	FindUser(ctx context.Context, id string) (*User, error)
	// FindUserByEmail returns a user by (lower-case) email (ENOTFOUND).
	FindUserByEmail(ctx context.Context, email string) (*User, error)
	// ListUsers returns every user, oldest first.
	ListUsers(ctx context.Context) ([]*User, error)
	// UpdateUser applies p (ENOTFOUND).
	UpdateUser(ctx context.Context, id string, p UserPatch) (*User, error)
	// CountAdmins returns how many enabled admins exist.
	CountAdmins(ctx context.Context) (int, error)
	// TouchLogin records a successful login.
	TouchLogin(ctx context.Context, id string, at time.Time) error

	// CreateAPIKey inserts a key (ENOTFOUND when its user does not exist).
	CreateAPIKey(ctx context.Context, k *APIKey) (*APIKey, error)
	// FindAPIKeyByHash returns a key by the hash of its secret (ENOTFOUND).
	FindAPIKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	// ListAPIKeys returns keys, newest first; userID "" lists all.
	ListAPIKeys(ctx context.Context, userID string) ([]*APIKey, error)
	// RevokeAPIKey revokes a key (ENOTFOUND); revoking twice keeps the first time.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) (*APIKey, error)
	// TouchAPIKey records a use of a key (best effort; callers may throttle).
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}
