package disk

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kokorotts/kokoro-tts/storage"
)

// FuzzValidateKey checks that every accepted key is a clean, local, relative
// path that maps to a file name below the root without any rewriting.
func FuzzValidateKey(f *testing.F) {
	for _, seed := range []string{
		"", "a", "jobs/01/audio.mp3", "/abs", "../x", "a/../../b", `a\b`, "a\x00b",
		".", "a/./b", ".hidden", "a//b", "a/", "ünï/ключ", "a..b", "\xff", "a\u0085b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := storage.ValidateKey(key)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Fatalf("storage.ValidateKey(%q) = %v; want it to wrap storage.ErrInvalidKey", key, err)
			}
			return
		}
		switch {
		case !filepath.IsLocal(filepath.FromSlash(key)):
			t.Errorf("accepted %q, which is not a local path", key)
		case path.Clean(key) != key:
			t.Errorf("accepted %q, which cleans to %q", key, path.Clean(key))
		case strings.ContainsAny(key, "\\\x00"):
			t.Errorf("accepted %q with a backslash or NUL", key)
		case !utf8.ValidString(key) || len(key) > storage.MaxKeyLen:
			t.Errorf("accepted %q: invalid UTF-8 or too long", key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if strings.HasPrefix(seg, tmpPrefix) || strings.HasPrefix(seg, ".") {
				t.Errorf("accepted %q, whose segment %q could collide with a temporary file", key, seg)
			}
		}
	})
}
