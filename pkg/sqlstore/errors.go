package sqlstore

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// dbError maps a driver error to a *tts.Error. The database's own failures
// (SQLite busy, locked, I/O, full, read-only, corrupt; PostgreSQL
// unreachable, shutting down, out of resources, serialization or deadlock),
// a closed pool and an expired ctx are EUNAVAILABLE: the caller may retry
// later or report 503. A constraint or type error means the store sent
// something it should not have: EINTERNAL.
func dbError(err error, op string) error {
	if err == nil {
		return nil
	}
	var te *tts.Error
	if errors.As(err, &te) {
		return err
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrConstraint, sqlite3.ErrMismatch, sqlite3.ErrRange, sqlite3.ErrTooBig:
			return tts.Wrap(tts.EINTERNAL, err, "database: "+op)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 22 data exception, 23 integrity constraint violation, 42
		// syntax error or access rule violation: the store's fault.
		if c := pe.Code; strings.HasPrefix(c, "22") || strings.HasPrefix(c, "23") || strings.HasPrefix(c, "42") {
			return tts.Wrap(tts.EINTERNAL, err, "database: "+op)
		}
	}
	return tts.Wrap(tts.EUNAVAILABLE, err, "database unavailable: "+op)
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}
