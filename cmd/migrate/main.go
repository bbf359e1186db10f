// Command migrate brings the job database's schema up to date. The API and
// the worker refuse to start on a database that is behind; run this first
// (it is safe to run on every deploy: applied migrations are skipped).
//
// Usage:
//
//	migrate           apply the missing migrations
//	migrate -check    exit 0 if the schema is up to date, 1 if not (health checks); never creates the database
//	migrate -version  print the build and the schema version it knows
//
// Environment: DATABASE_URL (default "sqlite:$DATA_DIR/kokoro-tts.db"),
// DATA_DIR (default ./data), LOG_LEVEL (debug, info, warn, error; default
// info), LOG_FORMAT (json or text; default text).
//
// Exit codes: 0 success, 1 failure (or not up to date with -check), 2 bad
// command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/caarlos0/env/v11"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env.ToMap(os.Environ()), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it takes the arguments (without the program
// name) and the environment, writes logs to stderr and returns the exit
// code.
func run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("migrate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	check := flags.Bool("check", false, "exit 0 if the database schema is up to date, 1 if not; change nothing")
	version := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "migrate: unexpected argument %q\n", flags.Arg(0))
		flags.Usage()
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "migrate %s (schema version %d)\n", buildVersion(), sqlstore.SchemaVersion)
		return 0
	}

	cfg, err := parseConfig(environ)
	if err != nil {
		fmt.Fprintf(stderr, "migrate: configuration: %v\n", err)
		return 1
	}
	log := cfg.logger(stderr)
	if err := cfg.Validate(); err != nil {
		log.Error("invalid configuration", "err", err)
		return 1
	}

	db, err := sqlstore.Open(ctx, cfg.DatabaseURL, sqlstore.Options{NoCreate: *check})
	if *check && errors.Is(err, fs.ErrNotExist) {
		log.Error(`database does not exist: run "migrate" (go run ./cmd/migrate)`, "err", err)
		return 1
	} else if err != nil {
		log.Error("cannot open the database", "err", err)
		return 1
	}
	defer db.Close()

	if *check {
		if err := db.CheckMigrated(ctx); err != nil {
			log.Error("database schema is not up to date", "database", db.Path(), "err", err)
			return 1
		}
		log.Info("database schema is up to date", "database", db.Path(), "schema_version", sqlstore.SchemaVersion)
		return 0
	}

	applied, err := db.Migrate(ctx)
	if err != nil {
		log.Error("migration failed", "database", db.Path(), "applied", applied, "err", err)
		return 1
	}
	if applied == nil {
		applied = []int{}
	}
	log.Info("database migrated", "database", db.Path(), "applied", applied, "schema_version", sqlstore.SchemaVersion)
	return 0
}

// buildVersion describes the binary from its embedded build information.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
