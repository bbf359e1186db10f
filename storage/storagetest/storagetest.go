// Package storagetest is the conformance suite every storage.Store backend
// must pass, in the spirit of go-cloud's drivertest: one set of behaviours
// (atomic writes, the not-found and invalid-key sentinels, seeking, context
// cancellation, concurrent writers) checked against each backend, so that
// the service can switch backends without noticing.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/storage"
)

// Run runs the conformance suite. newStore is called once per subtest and
// must return a working, empty store; it registers its own cleanup on t.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Name", testName},
		{"Ping", testPing},
		{"RoundTrip", testRoundTrip},
		{"UnknownSize", testUnknownSize},
		{"EmptyObject", testEmptyObject},
		{"DefaultContentType", testDefaultContentType},
		{"InvalidContentType", testInvalidContentType},
		{"SizeMismatch", testSizeMismatch},
		{"Overwrite", testOverwrite},
		{"OverwriteWhileReading", testOverwriteWhileReading},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"ValidKeys", testValidKeys},
		{"SeekAndRead", testSeekAndRead},
		{"CanceledPut", testCanceledPut},
		{"Large", testLarge},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Presign", testPresign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// invalidKeys is the catalogue of keys every backend must reject with
// storage.ErrInvalidKey.
func invalidKeys() []struct{ name, key string } {
	return []struct{ name, key string }{
		{"empty", ""},
		{"absolute", "/abs"},
		{"absolute nested", "/a/b"},
		{"dotdot", ".."},
		{"dotdot prefix", "../x"},
		{"dotdot escape", "a/../../b"},
		{"dotdot middle", "a/../b"},
		{"dotdot last", "a/.."},
		{"dot", "."},
		{"dot segment", "a/./b"},
		{"hidden", ".hidden"},
		{"hidden nested", "a/.tmp-x"},
		{"backslash", `a\b`},
		{"backslash escape", `..\x`},
		{"NUL", "a\x00b"},
		{"control", "a\x01b"},
		{"newline", "a\nb"},
		{"DEL", "a\x7fb"},
		{"C1 control", "a\u0085b"},
		{"invalid UTF-8", "a\xffb"},
		{"trailing slash", "a/"},
		{"double slash", "a//b"},
		{"only slash", "/"},
		{"too long", strings.Repeat("k/", 512) + "k"},
		{"segment too long", strings.Repeat("s", 256)},
	}
}

// validKeys are keys every backend must accept, including characters that
// need escaping in URLs.
func validKeys() []string {
	return []string{
		"a",
		"jobs/0192f3c4-7a2b-7c1d-9e8f-0a1b2c3d4e5f/audio.mp3",
		"with space.txt",
		"ünïcödé/ключ/音声.wav",
		"a..b",
		"a/b..",
		"url?x=1&y=2#frag%20+plus",
		"x-y_z~(1)@[2]!$'*,;=",
		strings.Repeat("s", 255),
		strings.Repeat(strings.Repeat("k", 204)+"/", 4) + strings.Repeat("k", 204), // 1024 bytes
	}
}

// data returns n deterministic pseudo-random bytes.
func data(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// opaque hides everything but Read, so a backend cannot take a shortcut
// through io.Seeker, io.ReaderAt or a Len method.
type opaque struct{ r io.Reader }

func (o opaque) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, s storage.Store, key string, b []byte, ct string) storage.ObjectInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(b), int64(len(b)), ct)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// read opens key and returns its bytes and Info.
func read(t *testing.T, s storage.Store, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	obj, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b, obj.Info()
}

func assertNotFound(t *testing.T, s storage.Store, key string) {
	t.Helper()
	if info, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%q) = %+v, %v; want storage.ErrNotFound", key, info, err)
	}
	obj, err := s.Open(t.Context(), key)
	if err == nil {
		obj.Close()
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(%q) error = %v; want storage.ErrNotFound", key, err)
	}
}

func assertInfo(t *testing.T, what string, got storage.ObjectInfo, key string, size int64, ct string) {
	t.Helper()
	if got.Key != key || got.Size != size || got.ContentType != ct {
		t.Errorf("%s = {Key:%q Size:%d ContentType:%q}; want {Key:%q Size:%d ContentType:%q}",
			what, got.Key, got.Size, got.ContentType, key, size, ct)
	}
	if got.ModTime.IsZero() {
		t.Errorf("%s.ModTime is zero", what)
	}
}

func testName(t *testing.T, s storage.Store) {
	if s.Name() == "" {
		t.Error("Name() is empty")
	}
}

func testPing(t *testing.T, s storage.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testRoundTrip(t *testing.T, s storage.Store) {
	const key, ct = "dir/sub/object.mp3", "audio/mpeg"
	want := data(1, 10_000)
	info := put(t, s, key, want, ct)
	assertInfo(t, "Put info", info, key, int64(len(want)), ct)

	got, oinfo := read(t, s, key)
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, they differ from the %d put", len(got), len(want))
	}
	assertInfo(t, "Open Info()", oinfo, key, int64(len(want)), ct)

	sinfo, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	assertInfo(t, "Stat", sinfo, key, int64(len(want)), ct)

	// A content type with parameters survives verbatim.
	const key2, ct2 = "dir/text.txt", "text/plain; charset=utf-8"
	put(t, s, key2, []byte("hello"), ct2)
	if sinfo, err := s.Stat(t.Context(), key2); err != nil || sinfo.ContentType != ct2 {
		t.Errorf("Stat(%q) = %+v, %v; want content type %q", key2, sinfo, err, ct2)
	}
}

func testUnknownSize(t *testing.T, s storage.Store) {
	const key, ct = "unknown-size.bin", "application/x-test"
	want := data(2, 70_000)
	info, err := s.Put(t.Context(), key, opaque{bytes.NewReader(want)}, -1, ct)
	if err != nil {
		t.Fatalf("Put(size -1): %v", err)
	}
	assertInfo(t, "Put info", info, key, int64(len(want)), ct)
	got, oinfo := read(t, s, key)
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, they differ from the %d put", len(got), len(want))
	}
	assertInfo(t, "Open Info()", oinfo, key, int64(len(want)), ct)
}

func testEmptyObject(t *testing.T, s storage.Store) {
	for _, size := range []int64{0, -1} {
		key := fmt.Sprintf("empty%d.bin", size)
		info, err := s.Put(t.Context(), key, opaque{bytes.NewReader(nil)}, size, "application/x-empty")
		if err != nil {
			t.Fatalf("Put(empty, size %d): %v", size, err)
		}
		assertInfo(t, "Put info", info, key, 0, "application/x-empty")
		got, oinfo := read(t, s, key)
		if len(got) != 0 {
			t.Errorf("read %d bytes from an empty object", len(got))
		}
		assertInfo(t, "Open Info()", oinfo, key, 0, "application/x-empty")
	}
}

func testDefaultContentType(t *testing.T, s storage.Store) {
	const key, want = "no-type", "application/octet-stream"
	info := put(t, s, key, []byte("x"), "")
	assertInfo(t, "Put info", info, key, 1, want)
	_, oinfo := read(t, s, key)
	assertInfo(t, "Open Info()", oinfo, key, 1, want)
}

func testInvalidContentType(t *testing.T, s storage.Store) {
	for _, ct := range []string{"audio/mpeg\r\nX-Injected: 1", "no slash", strings.Repeat("a", 300) + "/b"} {
		if _, err := s.Put(t.Context(), "ct.bin", bytes.NewReader([]byte("x")), 1, ct); err == nil {
			t.Errorf("Put with content type %q succeeded; want an error", ct)
		}
	}
	assertNotFound(t, s, "ct.bin")
}

func testSizeMismatch(t *testing.T, s storage.Store) {
	// Sizes that are multiples of common buffer sizes matter: an HTTP client
	// may have sent all the declared bytes before it notices the extra ones.
	for _, tc := range []struct{ body, declared int }{
		{1000, 2000}, {1000, 10}, {256 << 10, 128 << 10}, {128 << 10, 256 << 10},
	} {
		key := fmt.Sprintf("mismatch-%d-%d.bin", tc.body, tc.declared)
		body := data(3, tc.body)
		if _, err := s.Put(t.Context(), key, opaque{bytes.NewReader(body)}, int64(tc.declared), ""); err == nil {
			t.Errorf("Put of %d bytes declared as %d succeeded; want an error", tc.body, tc.declared)
		}
		assertNotFound(t, s, key)
	}
	body := data(3, 1000)
	// A failed overwrite keeps the old version.
	const key = "mismatch-keep.bin"
	old := data(4, 500)
	put(t, s, key, old, "application/x-old")
	if _, err := s.Put(t.Context(), key, opaque{bytes.NewReader(body)}, 5000, "application/x-new"); err == nil {
		t.Fatal("short Put succeeded; want an error")
	}
	got, info := read(t, s, key)
	if !bytes.Equal(got, old) || info.ContentType != "application/x-old" {
		t.Errorf("after a failed overwrite read %d bytes of type %q; want the old %d bytes of type application/x-old",
			len(got), info.ContentType, len(old))
	}
}

func testOverwrite(t *testing.T, s storage.Store) {
	const key = "over/write.bin"
	v1, v2 := data(5, 30_000), data(6, 12_345)
	put(t, s, key, v1, "application/x-v1")
	put(t, s, key, v2, "application/x-v2")
	got, info := read(t, s, key)
	if !bytes.Equal(got, v2) {
		t.Errorf("after overwrite read %d bytes, not the second version (%d bytes)", len(got), len(v2))
	}
	assertInfo(t, "Open Info()", info, key, int64(len(v2)), "application/x-v2")
	sinfo, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	assertInfo(t, "Stat", sinfo, key, int64(len(v2)), "application/x-v2")
}

// testOverwriteWhileReading checks that an open object never mixes versions:
// after an overwrite it goes on returning the old bytes or fails.
func testOverwriteWhileReading(t *testing.T, s storage.Store) {
	const key = "reading.bin"
	v1, v2 := data(7, 1<<20), data(8, 1<<20)
	put(t, s, key, v1, "application/x-v1")

	obj, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer obj.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(obj, head); err != nil {
		t.Fatalf("reading the head: %v", err)
	}
	put(t, s, key, v2, "application/x-v2")

	rest, err := io.ReadAll(obj)
	if got := append(head, rest...); !bytes.HasPrefix(v1, got) {
		t.Errorf("an open reader returned bytes that are not the version it opened (%d bytes, err %v)", len(got), err)
	}
	if err == nil && len(head)+len(rest) != len(v1) {
		t.Errorf("an open reader returned %d bytes without error; want all %d of its version", len(head)+len(rest), len(v1))
	}
	if _, err := obj.Seek(0, io.SeekStart); err == nil {
		if again, err := io.ReadAll(obj); !bytes.HasPrefix(v1, again) {
			t.Errorf("re-reading an open object after overwrite returned other bytes (%d, err %v)", len(again), err)
		}
	}
	got, _ := read(t, s, key)
	if !bytes.Equal(got, v2) {
		t.Error("a new Open does not see the new version")
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	assertNotFound(t, s, "missing")
	assertNotFound(t, s, "missing/nested/key.mp3")
	put(t, s, "parent/child", []byte("x"), "")
	assertNotFound(t, s, "parent") // a prefix is not an object
	put(t, s, "file", []byte("x"), "")
	assertNotFound(t, s, "file/child") // an object is not a prefix
}

func testDelete(t *testing.T, s storage.Store) {
	ctx := t.Context()
	put(t, s, "del/a/b.bin", []byte("b"), "")
	put(t, s, "del/a/c.bin", []byte("c"), "")
	if err := s.Delete(ctx, "del/a/b.bin"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertNotFound(t, s, "del/a/b.bin")
	if got, _ := read(t, s, "del/a/c.bin"); string(got) != "c" {
		t.Errorf("sibling read %q after Delete; want %q", got, "c")
	}
	if err := s.Delete(ctx, "del/a/b.bin"); err != nil {
		t.Errorf("deleting a deleted key: %v; want nil", err)
	}
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Errorf("deleting a key that never existed: %v; want nil", err)
	}
	// A prefix is not an object: deleting it leaves the objects below alone.
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Errorf("deleting a prefix: %v; want nil", err)
	}
	if got, _ := read(t, s, "del/a/c.bin"); string(got) != "c" {
		t.Errorf("object under a deleted prefix reads %q; want %q", got, "c")
	}
	// Deleting the last object under a prefix does not stop new puts there.
	if err := s.Delete(ctx, "del/a/c.bin"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	put(t, s, "del/a/d.bin", []byte("d"), "")
	if got, _ := read(t, s, "del/a/d.bin"); string(got) != "d" {
		t.Errorf("read %q after re-put; want %q", got, "d")
	}
}

func testInvalidKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	presigner, _ := s.(storage.Presigner)
	for _, tc := range invalidKeys() {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Put(ctx, tc.key, bytes.NewReader([]byte("x")), 1, ""); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Put(%q) error = %v; want storage.ErrInvalidKey", tc.key, err)
			}
			obj, err := s.Open(ctx, tc.key)
			if err == nil {
				obj.Close()
			}
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Open(%q) error = %v; want storage.ErrInvalidKey", tc.key, err)
			}
			if _, err := s.Stat(ctx, tc.key); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Stat(%q) error = %v; want storage.ErrInvalidKey", tc.key, err)
			}
			if err := s.Delete(ctx, tc.key); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Delete(%q) error = %v; want storage.ErrInvalidKey", tc.key, err)
			}
			if presigner != nil {
				if _, err := presigner.PresignGet(ctx, tc.key, time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
					t.Errorf("PresignGet(%q) error = %v; want storage.ErrInvalidKey", tc.key, err)
				}
			}
		})
	}
}

func testValidKeys(t *testing.T, s storage.Store) {
	for i, key := range validKeys() {
		want := []byte(fmt.Sprintf("object %d", i))
		put(t, s, key, want, "text/plain")
		got, info := read(t, s, key)
		if !bytes.Equal(got, want) {
			t.Errorf("key %q: read %q; want %q", key, got, want)
		}
		assertInfo(t, fmt.Sprintf("Open(%q).Info()", key), info, key, int64(len(want)), "text/plain")
		if err := s.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%q): %v", key, err)
		}
		assertNotFound(t, s, key)
	}
}

func testSeekAndRead(t *testing.T, s storage.Store) {
	const key = "seek.bin"
	want := data(9, 300_000)
	n := int64(len(want))
	put(t, s, key, want, "application/x-seek")
	obj, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer obj.Close()

	readAt := func(what string, offset int64, whence int, wantPos int64, length int) {
		t.Helper()
		pos, err := obj.Seek(offset, whence)
		if err != nil {
			t.Fatalf("%s: Seek(%d, %d): %v", what, offset, whence, err)
		}
		if pos != wantPos {
			t.Fatalf("%s: Seek(%d, %d) = %d; want %d", what, offset, whence, pos, wantPos)
		}
		buf := make([]byte, length)
		if _, err := io.ReadFull(obj, buf); err != nil {
			t.Fatalf("%s: reading %d bytes at %d: %v", what, length, pos, err)
		}
		if !bytes.Equal(buf, want[pos:pos+int64(length)]) {
			t.Errorf("%s: the %d bytes at %d are wrong", what, length, pos)
		}
	}
	readAt("from start", 1000, io.SeekStart, 1000, 5000)
	readAt("from current", 10_000, io.SeekCurrent, 16_000, 100)
	readAt("backwards from current", -6100, io.SeekCurrent, 10_000, 20)
	readAt("from end", -100, io.SeekEnd, n-100, 100)
	readAt("rewind", 0, io.SeekStart, 0, 64)
	readAt("range like HTTP", 123_456, io.SeekStart, 123_456, 65_536)

	// The tail, then EOF.
	if _, err := obj.Seek(-10, io.SeekEnd); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	tail, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(tail, want[n-10:]) {
		t.Errorf("reading the tail = %d bytes, %v; want the last 10", len(tail), err)
	}
	// http.ServeContent finds the size with Seek(0, SeekEnd), then rewinds.
	if size, err := obj.Seek(0, io.SeekEnd); err != nil || size != n {
		t.Errorf("Seek(0, SeekEnd) = %d, %v; want %d", size, err, n)
	}
	if k, err := obj.Read(make([]byte, 10)); k != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, EOF", k, err)
	}
	if _, err := obj.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek(-1, SeekStart) succeeded; want an error")
	}
	all := make([]byte, n)
	if _, err := obj.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	if _, err := io.ReadFull(obj, all); err != nil || !bytes.Equal(all, want) {
		t.Errorf("re-reading the whole object after seeks: %v", err)
	}
}

// cancelingReader yields size bytes in 32 KiB chunks and calls cancel once
// the first chunk has been read.
type cancelingReader struct {
	left   int
	cancel context.CancelFunc
	reads  int
}

func (r *cancelingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.reads == 1 {
		r.cancel()
	}
	r.reads++
	n := min(len(p), r.left, 32<<10)
	clear(p[:n])
	r.left -= n
	return n, nil
}

func testCanceledPut(t *testing.T, s storage.Store) {
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.Put(ctx, "canceled/before.bin", bytes.NewReader([]byte("x")), 1, "")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put with a canceled context: error = %v; want context.Canceled", err)
		}
		assertNotFound(t, s, "canceled/before.bin")
	})
	// The body is large next to what a backend buffers before sending,
	// so cancellation lands while the upload is in flight.
	const size = 4 << 20
	for _, declared := range []int64{size, -1} {
		t.Run(fmt.Sprintf("during/size=%d", declared), func(t *testing.T) {
			key := fmt.Sprintf("canceled/during%d.bin", declared)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			_, err := s.Put(ctx, key, &cancelingReader{left: size, cancel: cancel}, declared, "")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put canceled midway: error = %v; want context.Canceled", err)
			}
			assertNotFound(t, s, key)
		})
	}
	t.Run("keeps old version", func(t *testing.T) {
		const key = "canceled/keep.bin"
		old := data(10, 1000)
		put(t, s, key, old, "application/x-old")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if _, err := s.Put(ctx, key, &cancelingReader{left: size, cancel: cancel}, size, "application/x-new"); err == nil {
			t.Fatal("canceled Put succeeded")
		}
		got, info := read(t, s, key)
		if !bytes.Equal(got, old) || info.ContentType != "application/x-old" {
			t.Errorf("after a canceled overwrite read %d bytes of type %q; want the old version", len(got), info.ContentType)
		}
	})
}

func testLarge(t *testing.T, s storage.Store) {
	want := data(11, 6<<20+123)
	sum := sha256.Sum256(want)
	for _, size := range []int64{int64(len(want)), -1} {
		key := fmt.Sprintf("large/%d.bin", size)
		info, err := s.Put(t.Context(), key, opaque{bytes.NewReader(want)}, size, "application/x-large")
		if err != nil {
			t.Fatalf("Put(%d bytes, size %d): %v", len(want), size, err)
		}
		assertInfo(t, "Put info", info, key, int64(len(want)), "application/x-large")
		obj, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, obj)
		obj.Close()
		if err != nil || n != int64(len(want)) || !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Errorf("read back %d bytes (err %v) with a different checksum; want %d", n, err, len(want))
		}
	}
}

// testConcurrentPuts races writers on one key while readers keep opening it:
// every read must be exactly one writer's bytes with that writer's type, and
// so must the final object. A read that races an overwrite may fail instead,
// as long as it returned no bytes of another version.
func testConcurrentPuts(t *testing.T, s storage.Store) {
	const key, writers, size = "race/key.bin", 6, 256 << 10
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = data(uint64(100+i), size)
	}
	whose := func(b []byte, ct string) error {
		for i, v := range versions {
			if bytes.Equal(b, v) {
				if want := fmt.Sprintf("application/x-writer-%d", i); ct != want {
					return fmt.Errorf("bytes of writer %d carry type %q", i, ct)
				}
				return nil
			}
		}
		return fmt.Errorf("%d bytes of type %q that no writer wrote", len(b), ct)
	}

	ctx := t.Context()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			<-start
			_, err := s.Put(ctx, key, opaque{bytes.NewReader(versions[i])}, size, fmt.Sprintf("application/x-writer-%d", i))
			errs <- err
		})
	}
	done := make(chan struct{})
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				obj, err := s.Open(ctx, key)
				if errors.Is(err, storage.ErrNotFound) {
					continue // no writer has finished yet
				}
				if err != nil {
					t.Errorf("Open during writes: %v", err)
					return
				}
				b, err := io.ReadAll(obj)
				info := obj.Info()
				obj.Close()
				if err != nil {
					// A read racing an overwrite may fail (S3 pins the
					// version it opened), but what it got must be a prefix
					// of the version it opened.
					if !prefixOfType(versions, b, info.ContentType) {
						t.Errorf("a failed read (%v) returned bytes of another version than its type %q", err, info.ContentType)
						return
					}
					continue
				}
				if err := whose(b, info.ContentType); err != nil {
					t.Errorf("a reader saw a torn object: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Put: %v", err)
		}
	}
	got, info := read(t, s, key)
	if err := whose(got, info.ContentType); err != nil {
		t.Errorf("after concurrent puts: %v", err)
	}
	if info.Size != size {
		t.Errorf("Info().Size = %d; want %d", info.Size, size)
	}
}

// prefixOfType reports whether b is a prefix of the version whose writer
// used content type ct.
func prefixOfType(versions [][]byte, b []byte, ct string) bool {
	var i int
	if _, err := fmt.Sscanf(ct, "application/x-writer-%d", &i); err != nil || i < 0 || i >= len(versions) {
		return false
	}
	return bytes.HasPrefix(versions[i], b)
}

// testPresign checks, for stores that implement storage.Presigner, that a
// presigned URL serves the object to a plain HTTP client.
func testPresign(t *testing.T, s storage.Store) {
	p, ok := s.(storage.Presigner)
	if !ok {
		t.Skipf("%s does not implement storage.Presigner", s.Name())
	}
	const key = "presign/a file?.mp3"
	want := data(12, 50_000)
	put(t, s, key, want, "audio/mpeg")
	u, err := p.PresignGet(t.Context(), key, time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatalf("presigned URL %q: %v", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading presigned response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET presigned URL: %s: %.200s", resp.Status, got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("presigned GET returned %d bytes that differ from the %d put", len(got), len(want))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "audio/mpeg" {
		t.Errorf("presigned GET Content-Type = %q; want audio/mpeg", ct)
	}
	if _, err := p.PresignGet(t.Context(), key, 0); err == nil {
		t.Error("PresignGet with a zero expiry succeeded; want an error")
	}
}

// Benchmark measures Put and Open+read of a 64 KiB and a 4 MiB object on s,
// reporting throughput. Backends call it from their own Benchmark function.
func Benchmark(b *testing.B, s storage.Store) {
	for _, size := range []int{64 << 10, 4 << 20} {
		body := data(13, size)
		key := fmt.Sprintf("bench/%d.bin", size)
		b.Run(fmt.Sprintf("Put/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := s.Put(b.Context(), key, bytes.NewReader(body), int64(size), "application/x-bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Open/%dKiB", size>>10), func(b *testing.B) {
			if _, err := s.Put(b.Context(), key, bytes.NewReader(body), int64(size), "application/x-bench"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				obj, err := s.Open(b.Context(), key)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, obj); err != nil {
					b.Fatal(err)
				}
				obj.Close()
			}
		})
	}
}
