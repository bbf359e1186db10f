// Package storage stores audio objects. It offers a small interface with a
// local-disk backend (the default) and an S3 backend (MinIO, AWS); both pass
// the conformance suite in storage/storagetest.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("storage: object not found")

// ErrInvalidKey is returned (wrapped) when a key is empty, absolute, contains
// "..", a backslash or a NUL, or is otherwise unsafe.
var ErrInvalidKey = errors.New("storage: invalid key")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
}

// Object is an open object: seekable so that HTTP Range requests can be served
// from it.
type Object interface {
	io.ReadSeekCloser
	Info() ObjectInfo
}

// Store is an object store. Keys are slash-separated relative paths such as
// "jobs/0192.../audio.mp3".
type Store interface {
	// Put stores r under key atomically: readers see the old object or the
	// whole new one, never a part. size may be -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (ObjectInfo, error)
	// Open opens the object for reading (ErrNotFound).
	Open(ctx context.Context, key string) (Object, error)
	// Stat describes the object (ErrNotFound).
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Ping checks the store is usable.
	Ping(ctx context.Context) error
	// Name names the backend for logs and health ("disk", "s3").
	Name() string
}

// Presigner is implemented by stores that can hand out time-limited URLs.
type Presigner interface {
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}
