package main

import (
	"strings"
	"testing"
)

// TestAuthConfig: service mode is closed by default, secrets and origins
// are checked, and an open API listens on loopback unless told otherwise.
func TestAuthConfig(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		name string
		env  map[string]string
		want string // "" for valid
		addr string
	}{
		{"embedded open", map[string]string{}, "", "127.0.0.1:8080"},
		{"embedded closed", map[string]string{"JWT_SECRET": secret}, "", ":8080"},
		{"explicit addr kept", map[string]string{"HTTP_ADDR": "0.0.0.0:9000"}, "", "0.0.0.0:9000"},
		{"service mode needs a secret", map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0"}, "JWT_SECRET: required in service mode", ""},
		{"service mode open on purpose", map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "AUTH_ALLOW_OPEN": "true"}, "", "127.0.0.1:8080"},
		{"short secret", map[string]string{"JWT_SECRET": "CHANGE-ME"}, "JWT_SECRET: at least 32 bytes", ""},
		{"wildcard origin", map[string]string{"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS", ""},
		{"origin with a path", map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example.com/app"}, "CORS_ALLOWED_ORIGINS", ""},
		{"origin with a fragment", map[string]string{"CORS_ALLOWED_ORIGINS": "https://x#y"}, "CORS_ALLOWED_ORIGINS", ""},
		{"origin with user info", map[string]string{"CORS_ALLOWED_ORIGINS": "https://u@x.example.com"}, "CORS_ALLOWED_ORIGINS", ""},
		{"two origins", map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example.com,http://localhost:5173"}, "", "127.0.0.1:8080"},
		{"token lifetime", map[string]string{"JWT_TTL": "1s"}, "JWT_TTL", ""},
		{"negative quota", map[string]string{"DAILY_CHAR_QUOTA": "-1"}, "DAILY_CHAR_QUOTA", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"REDIS_URL", "JWT_SECRET", "HTTP_ADDR", "AUTH_ALLOW_OPEN", "CORS_ALLOWED_ORIGINS", "JWT_TTL", "DAILY_CHAR_QUOTA"} {
				t.Setenv(k, c.env[k])
			}
			t.Setenv("DATA_DIR", t.TempDir())
			m := &Main{}
			err := m.ParseEnv()
			if c.want == "" {
				if err != nil {
					t.Fatalf("ParseEnv: %v", err)
				}
				if m.Config.HTTPAddr != c.addr {
					t.Fatalf("HTTPAddr = %q, want %q", m.Config.HTTPAddr, c.addr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseEnv = %v, want an error naming %s", err, c.want)
			}
		})
	}
}
