package sqlstore

import (
	"errors"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/mattn/go-sqlite3"
)

// dbError maps a driver error to a *tts.Error. SQLite's own failures (busy,
// locked, I/O, full, read-only, corrupt), a closed pool and an expired ctx
// are EUNAVAILABLE: the caller may retry later or report 503. A constraint or
// type error means the store sent something it should not have: EINTERNAL.
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
	return tts.Wrap(tts.EUNAVAILABLE, err, "database unavailable: "+op)
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}
