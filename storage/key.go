package storage

import (
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Key limits. MaxKeyLen is S3's limit, MaxSegmentLen the usual NAME_MAX, so
// that an object can move between backends unchanged.
const (
	MaxKeyLen     = 1024
	MaxSegmentLen = 255
)

// ValidateKey enforces the key rules shared by every backend: a key is a
// non-empty, slash-separated relative path of valid UTF-8, at most 1024 bytes,
// whose segments are non-empty, at most 255 bytes, do not start with '.' and
// contain no backslash or control character.
//
// S3 itself would take most of these keys; they are refused so that an
// object can move between backends and a key means the same everywhere.
func ValidateKey(key string) error {
	if problem := keyProblem(key); problem != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, truncate(key), problem)
	}
	return nil
}

// keyProblem says what is wrong with key, or returns "" if nothing is.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "not valid UTF-8"
	}
	for _, r := range key {
		if r == '\\' {
			return "contains a backslash"
		}
		if unicode.IsControl(r) {
			return "contains a control character"
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return "has an empty segment (leading, trailing or double slash)"
		case seg[0] == '.':
			return "has a segment starting with '.'"
		case len(seg) > MaxSegmentLen:
			return fmt.Sprintf("has a segment longer than %d bytes", MaxSegmentLen)
		}
	}
	return ""
}

// truncate keeps error messages short when a key is huge.
func truncate(key string) string {
	const n = 64
	if len(key) <= n {
		return key
	}
	return key[:n] + "..."
}

// DefaultContentType is stored when Put is given no content type (what S3
// itself assumes; sent explicitly so the backends agree).
const DefaultContentType = "application/octet-stream"

// MaxContentTypeLen bounds a stored content type.
const MaxContentTypeLen = 255

// NormalizeContentType applies the default and rejects values that are not a
// media type: they end up in an HTTP header, so a newline must never pass.
func NormalizeContentType(ct string) (string, error) {
	if ct == "" {
		return DefaultContentType, nil
	}
	if len(ct) > MaxContentTypeLen {
		return "", fmt.Errorf("content type longer than %d bytes", MaxContentTypeLen)
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return "", fmt.Errorf("content type %q: %w", ct, err)
	}
	return ct, nil
}
