package s3

import (
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kokorotts/kokoro-tts/storage"
)

// Key limits. maxKeyLen is S3's limit, maxSegmentLen the usual NAME_MAX, so
// that an object can move between backends unchanged.
const (
	maxKeyLen     = 1024
	maxSegmentLen = 255
)

// validateKey enforces the key rules shared by every backend (the same rules
// live in storage/disk; the conformance suite keeps them in step): a key is a
// non-empty, slash-separated relative path of valid UTF-8, at most 1024 bytes,
// whose segments are non-empty, at most 255 bytes, do not start with '.' and
// contain no backslash or control character.
//
// S3 itself would take most of these keys; they are refused so that an
// object can move between backends and a key means the same everywhere.
func validateKey(key string) error {
	if problem := keyProblem(key); problem != "" {
		return fmt.Errorf("%w %q: %s", storage.ErrInvalidKey, truncate(key), problem)
	}
	return nil
}

// keyProblem says what is wrong with key, or returns "" if nothing is.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > maxKeyLen:
		return fmt.Sprintf("longer than %d bytes", maxKeyLen)
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
		case len(seg) > maxSegmentLen:
			return fmt.Sprintf("has a segment longer than %d bytes", maxSegmentLen)
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

// defaultContentType is what S3 itself assumes; it is sent explicitly so the
// backends agree.
const defaultContentType = "application/octet-stream"

const maxContentTypeLen = 255

// normalizeContentType applies the default and rejects values that are not a
// media type (same rules as storage/disk).
func normalizeContentType(ct string) (string, error) {
	if ct == "" {
		return defaultContentType, nil
	}
	if len(ct) > maxContentTypeLen {
		return "", fmt.Errorf("content type longer than %d bytes", maxContentTypeLen)
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return "", fmt.Errorf("content type %q: %w", ct, err)
	}
	return ct, nil
}
