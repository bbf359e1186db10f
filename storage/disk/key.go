package disk

import (
	"fmt"
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
// live in storage/s3; the conformance suite keeps them in step): a key is a
// non-empty, slash-separated relative path of valid UTF-8, at most 1024 bytes,
// whose segments are non-empty, at most 255 bytes, do not start with '.' and
// contain no backslash or control character.
//
// Forbidding a leading '.' rejects "." and ".." and also reserves dot-names for
// the backend's own files (temporary files here), so they can never collide
// with a key.
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
