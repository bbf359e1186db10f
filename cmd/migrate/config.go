package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
)

// config is migrate's configuration, read from the environment. The env tags
// name the variables (tools list them by reflection); an empty DatabaseURL
// means "sqlite:" + DataDir + "/kokoro-tts.db".
type config struct {
	// DatabaseURL is the database to migrate (see pkg/sqlstore for the DSN forms).
	DatabaseURL string `env:"DATABASE_URL"`
	// DataDir holds the default SQLite database.
	DataDir string `env:"DATA_DIR" envDefault:"./data"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json (production) or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"text"`
}

// parseConfig reads the configuration from environ and applies the default
// database URL. It does not validate: call Validate.
func parseConfig(environ map[string]string) (config, error) {
	var c config
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return c, err
	}
	c.DatabaseURL = strings.TrimSpace(c.DatabaseURL)
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "kokoro-tts.db")
	}
	return c, nil
}

// Validate checks every field and names the variable at fault.
func (c config) Validate() error {
	if _, err := sqlstore.ParseDSN(c.DatabaseURL); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	if _, ok := parseLevel(c.LogLevel); !ok {
		return fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if f := strings.ToLower(c.LogFormat); f != "json" && f != "text" {
		return fmt.Errorf("LOG_FORMAT: %q is not json or text", c.LogFormat)
	}
	return nil
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, true
	case "info", "":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// logger returns the logger the configuration asks for. Invalid values fall
// back to info and text, so that Validate's error can still be logged.
func (c config) logger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
