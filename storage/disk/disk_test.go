package disk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/kokorotts/kokoro-tts/storage"
	"github.com/kokorotts/kokoro-tts/storage/disk"
	"github.com/kokorotts/kokoro-tts/storage/storagetest"
)

func newStore(t *testing.T) (*disk.Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := disk.New(root)
	if err != nil {
		t.Fatalf("disk.New: %v", err)
	}
	return s, root
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, _ := newStore(t)
		return s
	})
}

func TestNotAPresigner(t *testing.T) {
	s, _ := newStore(t)
	if _, ok := any(s).(storage.Presigner); ok {
		t.Error("disk.Store implements storage.Presigner; it has no URLs to sign")
	}
}

func TestNew(t *testing.T) {
	if _, err := disk.New(""); err == nil {
		t.Error(`New("") succeeded`)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.New(file); err == nil {
		t.Error("New(a regular file) succeeded")
	}
	nested := filepath.Join(t.TempDir(), "a", "b")
	if _, err := disk.New(nested); err != nil {
		t.Fatalf("New(missing nested dir): %v", err)
	}
	if fi, err := os.Stat(nested); err != nil || !fi.IsDir() {
		t.Errorf("New did not create %s: %v", nested, err)
	}
}

// TestPlainFiles checks the documented layout: an object is the file
// <root>/<key> holding exactly the bytes put.
func TestPlainFiles(t *testing.T) {
	s, root := newStore(t)
	want := []byte("ID3 pretend mp3")
	if _, err := s.Put(t.Context(), "jobs/1/audio.mp3", bytes.NewReader(want), -1, "audio/mpeg"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "jobs", "1", "audio.mp3"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("file on disk = %q, %v; want %q", got, err, want)
	}
	if names := listFiles(t, root); len(names) != 1 {
		t.Errorf("root holds %v; want only the object", names)
	}
}

// TestContentTypeFallback covers files that carry no stored type.
func TestContentTypeFallback(t *testing.T) {
	s, root := newStore(t)
	for name, want := range map[string]string{
		"by-hand.mp3":  "audio/mpeg",
		"by-hand.WAV":  "audio/wav",
		"by-hand.zzzz": "application/octet-stream",
		"no-extension": "application/octet-stream",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := s.Stat(t.Context(), name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", name, err)
		}
		if info.ContentType != want || info.Size != 1 {
			t.Errorf("Stat(%q) = %+v; want size 1, type %q", name, info, want)
		}
	}
	// A stored type wins over the extension.
	if _, err := s.Put(t.Context(), "typed.mp3", strings.NewReader("x"), 1, "audio/x-custom"); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(t.Context(), "typed.mp3"); err != nil || info.ContentType != "audio/x-custom" {
		t.Errorf("Stat = %+v, %v; want the stored type audio/x-custom", info, err)
	}
}

// TestRootEscape plants symbolic links that point outside the root and
// checks that no operation reads, writes or deletes through them.
func TestRootEscape(t *testing.T) {
	s, root := newStore(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, outside)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"absdir":  outside,
		"reldir":  rel,
		"absfile": secret,
		"relfile": filepath.Join(rel, "secret"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	for _, key := range []string{"absdir/secret", "reldir/secret", "absfile", "relfile"} {
		if obj, err := s.Open(ctx, key); err == nil {
			b, _ := io.ReadAll(obj)
			obj.Close()
			t.Errorf("Open(%q) read %q from outside the root", key, b)
		}
		if info, err := s.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q) = %+v; want an error", key, info)
		}
	}
	for _, key := range []string{"absdir/new", "reldir/new", "absdir/sub/new"} {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), 1, ""); err == nil {
			t.Errorf("Put(%q) succeeded through a link out of the root", key)
		}
		s.Delete(ctx, key)
	}
	for _, key := range []string{"absdir/secret", "reldir/secret"} {
		s.Delete(ctx, key)
	}
	// Putting over, or deleting, a link replaces or removes the link itself.
	if _, err := s.Put(ctx, "absfile", strings.NewReader("mine"), 4, ""); err != nil {
		t.Errorf("Put over a link: %v", err)
	}
	if err := s.Delete(ctx, "relfile"); err != nil {
		t.Errorf("Delete of a link: %v", err)
	}

	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Errorf("the file outside the root is now %q, %v", b, err)
	}
	if names := listFiles(t, outside); len(names) != 1 {
		t.Errorf("outside the root now holds %v; want only secret", names)
	}
}

// failingReader returns n bytes and then err.
func failingReader(n int, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(make([]byte, n)), iotest.ErrReader(err))
}

// TestFailedPutsLeaveNothing checks that every kind of failed Put removes its
// temporary file and leaves the previous version untouched.
func TestFailedPutsLeaveNothing(t *testing.T) {
	s, root := newStore(t)
	const key = "jobs/7/audio.mp3"
	old := []byte("old version")
	if _, err := s.Put(t.Context(), key, bytes.NewReader(old), int64(len(old)), "audio/mpeg"); err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, root)

	errBoom := errors.New("boom")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		r    io.Reader
		size int64
		want error
	}{
		{"reader error", t.Context(), failingReader(300_000, errBoom), -1, errBoom},
		{"short body", t.Context(), bytes.NewReader(make([]byte, 10)), 20, io.ErrUnexpectedEOF},
		{"long body", t.Context(), bytes.NewReader(make([]byte, 30)), 20, nil},
		{"canceled", canceled, bytes.NewReader(make([]byte, 10)), 10, context.Canceled},
		{"canceled midway", t.Context(), nil, -1, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, r := tc.ctx, tc.r
			if r == nil {
				c, cancel := context.WithCancel(t.Context())
				defer cancel()
				ctx, r = c, io.MultiReader(bytes.NewReader(make([]byte, 200_000)), cancelThen(cancel, 200_000))
			}
			_, err := s.Put(ctx, key, r, tc.size, "audio/x-new")
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Put error = %v; want %v", err, tc.want)
			}
			if after := listFiles(t, root); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("files after a failed Put: %v; want %v", after, before)
			}
			got, err := os.ReadFile(filepath.Join(root, key))
			if err != nil || !bytes.Equal(got, old) {
				t.Errorf("object = %q, %v; want the old version", got, err)
			}
		})
	}
	// A failed Put into a new directory leaves the directory behind at worst,
	// never a file.
	if _, err := s.Put(t.Context(), "fresh/dir/x.bin", failingReader(10, errBoom), -1, ""); !errors.Is(err, errBoom) {
		t.Fatalf("Put error = %v; want %v", err, errBoom)
	}
	for _, name := range listFiles(t, root) {
		if strings.HasPrefix(name, "fresh") {
			t.Errorf("failed Put left %s", name)
		}
	}
}

// cancelThen is a reader that calls cancel and then yields n zero bytes.
func cancelThen(cancel context.CancelFunc, n int) io.Reader {
	var once sync.Once
	return io.MultiReader(readerFunc(func(p []byte) (int, error) {
		once.Do(cancel)
		return 0, io.EOF
	}), bytes.NewReader(make([]byte, n)))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	s, root := newStore(t)
	ctx := t.Context()
	for _, key := range []string{"jobs/1/audio.mp3", "jobs/2/audio.mp3"} {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "jobs/1/audio.mp3"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "jobs", "1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("jobs/1 still exists after deleting its only object (%v)", err)
	}
	if err := s.Delete(ctx, "jobs/2/audio.mp3"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Errorf("root holds %v after deleting every object (%v); want it empty", entries, err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("the root itself was removed: %v", err)
	}
}

// TestPutRacesPrune runs Puts into a directory that concurrent Deletes keep
// emptying and removing: no Put may fail.
func TestPutRacesPrune(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				key := fmt.Sprintf("a/b/c/w%d-%d", w, i)
				if _, err := s.Put(ctx, key, strings.NewReader("x"), 1, ""); err != nil {
					t.Errorf("Put(%q): %v", key, err)
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					t.Errorf("Delete(%q): %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPing(t *testing.T) {
	s, root := newStore(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if names := listFiles(t, root); len(names) != 0 {
		t.Errorf("Ping left %v behind", names)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded with the root directory gone")
	}
}

// TestOpenIgnoresContextAfterOpen pins the documented behaviour: the
// context bounds Open, not the reads that follow.
func TestOpenIgnoresContextAfterOpen(t *testing.T) {
	s, _ := newStore(t)
	if _, err := s.Put(t.Context(), "k", strings.NewReader("hello"), 5, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	obj, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	cancel()
	if b, err := io.ReadAll(obj); err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v after cancel; want hello", b, err)
	}
}

// listFiles returns the regular files and symlinks under dir, relative and
// sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func BenchmarkDisk(b *testing.B) {
	s, err := disk.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Benchmark(b, s)
}

// TestRemoveStaleTemp: the temporary files a killed writer left are removed
// once they are older than a live Put could be, with the directories made
// for them; objects, fresh temporary files (a Put in progress) and
// symbolic links are left alone.
func TestRemoveStaleTemp(t *testing.T) {
	dir := t.TempDir()
	s, err := disk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "jobs/a/audio.wav", strings.NewReader("RIFF"), 4, "audio/wav"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	write := func(rel string, mod time.Time) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write("jobs/a/.tmp-DEAD1", old)
	write("jobs/b/.tmp-DEAD2", old)      // the only file of its directory
	write("cache/.tmp-LIVE", time.Now()) // a Put in progress
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("not the store's"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(outside, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "jobs", "a", ".tmp-LINK")); err != nil {
		t.Fatal(err)
	}
	n, err := s.RemoveStaleTemp(time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("RemoveStaleTemp = %d, %v; want 2", n, err)
	}
	for rel, want := range map[string]bool{
		"jobs/a/audio.wav": true, "jobs/a/.tmp-DEAD1": false, "jobs/b": false, "cache/.tmp-LIVE": true, "jobs/a/.tmp-LINK": true,
	} {
		_, err := os.Lstat(filepath.Join(dir, rel))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v (%v)", rel, got, want, err)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("the file behind the link: %v", err)
	}
	if o, err := s.Open(ctx, "jobs/a/audio.wav"); err != nil {
		t.Fatal(err)
	} else {
		o.Close()
	}
}
