package sqlstore

import (
	"context"
	"database/sql"

	"github.com/jmoiron/sqlx"
)

// rebinding is the connection pool with every query written with ?
// placeholders rebound to the driver's own ($1, $2, ... for PostgreSQL), so
// that one set of queries serves both databases.
type rebinding struct{ *sqlx.DB }

func (d rebinding) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.DB.ExecContext(ctx, d.Rebind(q), args...)
}

func (d rebinding) GetContext(ctx context.Context, dest any, q string, args ...any) error {
	return d.DB.GetContext(ctx, dest, d.Rebind(q), args...)
}

func (d rebinding) SelectContext(ctx context.Context, dest any, q string, args ...any) error {
	return d.DB.SelectContext(ctx, dest, d.Rebind(q), args...)
}

func (d rebinding) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.DB.QueryContext(ctx, d.Rebind(q), args...)
}

func (d rebinding) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return d.DB.QueryRowContext(ctx, d.Rebind(q), args...)
}

func (d rebinding) QueryRowxContext(ctx context.Context, q string, args ...any) *sqlx.Row {
	return d.DB.QueryRowxContext(ctx, d.Rebind(q), args...)
}

func (d rebinding) BeginTxx(ctx context.Context, opts *sql.TxOptions) (rebindingTx, error) {
	tx, err := d.DB.BeginTxx(ctx, opts)
	return rebindingTx{tx}, err
}

// rebindingTx is a transaction that rebinds like rebinding.
type rebindingTx struct{ *sqlx.Tx }

func (t rebindingTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.Rebind(q), args...)
}

func (t rebindingTx) GetContext(ctx context.Context, dest any, q string, args ...any) error {
	return t.Tx.GetContext(ctx, dest, t.Rebind(q), args...)
}

func (t rebindingTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.Rebind(q), args...)
}

func (t rebindingTx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.Rebind(q))
}
