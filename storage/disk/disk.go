// Package disk is the local-disk storage backend, the service's default.
//
// An object is a plain file at <root>/<key>, so "jobs/42/audio.mp3" can be
// played, backed up or served from the directory as it is. The content type
// travels with the file, in its user.mime_type extended attribute (the
// freedesktop.org name): it is set on the temporary file before the rename,
// so bytes and type always change together, even when two writers race. A
// file without the attribute (copied by a tool that drops extended
// attributes, or put there by hand) is typed by its extension. On a file
// system without user extended attributes, a Put whose type is the one its
// extension implies still succeeds; any other type is refused rather than
// silently lost.
//
// Writes are atomic: the bytes go to a temporary file (".tmp-*") in the
// object's directory, which is fsynced and renamed over the key, and the
// directory is fsynced after the rename. On any error, including a canceled
// context, the temporary file is removed, so a failed Put leaves the previous
// version (or nothing) in place. A process killed in the middle of a Put
// cannot remove its temporary file: RemoveStaleTemp, which the worker runs at
// start, removes those left for longer than a live Put could take. A reader keeps reading the version it opened.
// Directories are created as needed and removed again by Delete once empty.
// Unlike S3, a key cannot be both an object and a prefix of other keys
// ("a" and "a/b"): the second Put fails.
//
// Every file access goes through an os.Root, so neither a key nor a symbolic
// link planted inside the root can reach a file outside it. Keys are checked
// first (see storage.ValidateKey); names starting with '.' are never valid keys, which
// keeps temporary files out of the key space. Files are created 0640 and
// directories 0750 (before umask).
package disk

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kokorotts/kokoro-tts/storage"
)

const (
	filePerm  = 0o640
	dirPerm   = 0o750
	tmpPrefix = ".tmp-"
	copyBuf   = 128 << 10
)

// errNoXattr reports a file system without user extended attributes.
var errNoXattr = errors.New("the file system does not support user extended attributes")

// Store keeps objects under one root directory. It is safe for concurrent
// use, also by several processes sharing the directory.
type Store struct {
	dir string // absolute
}

var _ storage.Store = (*Store)(nil)

// New returns a Store rooted at root, creating the directory if needed. It
// does not check that the directory is writable; Ping does.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("disk: root directory not set")
	}
	dir, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	r.Close()
	return &Store{dir: dir}, nil
}

// Name returns "disk".
func (s *Store) Name() string { return "disk" }

// openRoot opens the root for one operation. Opening it per call (one
// openat) keeps Store free of a file descriptor to close and follows the
// directory if it is replaced, e.g. by a volume remount.
func (s *Store) openRoot() (*os.Root, error) {
	return os.OpenRoot(s.dir)
}

// Put writes r to key atomically (see the package documentation). With
// size >= 0 the body must have exactly size bytes. An empty contentType
// is stored as application/octet-stream.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: put: %w", err)
	}
	ct, err := storage.NormalizeContentType(contentType)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	if size < -1 {
		return storage.ObjectInfo{}, fmt.Errorf("disk: put %q: invalid size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	defer root.Close()
	info, err := put(ctx, root, key, r, size, ct)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: put %q: %w", key, err)
	}
	return info, nil
}

func put(ctx context.Context, root *os.Root, key string, r io.Reader, size int64, ct string) (info storage.ObjectInfo, err error) {
	dir := path.Dir(key)
	f, tmp, err := createTemp(root, dir)
	if err != nil {
		return info, err
	}
	committed := false
	defer func() {
		if !committed {
			f.Close() // may already be closed; the error is irrelevant
			root.Remove(tmp)
			// And the directories made for it, if they are empty now (a
			// failed Put leaves nothing behind, not even an inode).
			pruneDirs(root, dir)
		}
	}()

	// Type first: refusing an unstorable type should not cost a full copy.
	if err := setContentType(f, ct); err != nil {
		if !errors.Is(err, errNoXattr) || ct != typeByExtension(key) {
			return info, fmt.Errorf("storing content type %q: %w", ct, err)
		}
	}
	n, err := copyBody(ctx, f, r, size)
	if err != nil {
		return info, err
	}
	if err := f.Sync(); err != nil {
		return info, err
	}
	fi, err := f.Stat()
	if err != nil {
		return info, err
	}
	if err := f.Close(); err != nil {
		return info, err
	}
	// Last chance to honour cancellation: after the rename the Put has happened.
	if err := ctx.Err(); err != nil {
		return info, err
	}
	if err := root.Rename(tmp, key); err != nil {
		return info, err
	}
	committed = true
	info = storage.ObjectInfo{Key: key, Size: n, ContentType: ct, ModTime: fi.ModTime()}
	// The object is in place; a failed directory fsync only weakens durability
	// across a crash, which the caller should still hear about.
	if err := syncDir(root, dir); err != nil {
		return info, fmt.Errorf("syncing directory: %w", err)
	}
	return info, nil
}

// createTemp creates a new temporary file in dir, creating dir if needed.
// A concurrent Delete may remove an empty directory between MkdirAll and
// OpenFile (or inside MkdirAll): that shows as "not exist", and the directory
// is simply made again. Racing with another Put that makes the same
// directory, os.Root's MkdirAll can report "file exists"; that is retried too.
func createTemp(root *os.Root, dir string) (f *os.File, name string, err error) {
	for range 5 {
		if dir != "." {
			if err = root.MkdirAll(dir, dirPerm); err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
					continue
				}
				return nil, "", err
			}
		}
		name = path.Join(dir, tmpPrefix+rand.Text())
		f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if !errors.Is(err, fs.ErrNotExist) {
			return f, name, err
		}
	}
	return nil, "", err
}

// copyBody copies r to w, checking ctx between reads (a Read that blocks is
// not interrupted), and enforces size when it is not -1.
func copyBody(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	if size >= 0 {
		r = io.LimitReader(r, size+1) // one extra byte detects a long body
	}
	buf := make([]byte, copyBuf)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	switch {
	case size >= 0 && n > size:
		return n, fmt.Errorf("body is longer than the declared size %d", size)
	case size >= 0 && n < size:
		return n, fmt.Errorf("body has %d bytes, declared size %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	return n, nil
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open opens key for reading. The returned Object is backed by an *os.File:
// it ignores ctx once open, and keeps reading the opened version even if
// the key is overwritten or deleted meanwhile.
func (s *Store) Open(ctx context.Context, key string) (storage.Object, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("disk: open: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("disk: open %q: %w", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, fmt.Errorf("disk: open %q: %w", key, err)
	}
	defer root.Close() // files opened through a Root outlive it
	f, info, err := openObject(root, key)
	if err != nil {
		return nil, fmt.Errorf("disk: open %q: %w", key, err)
	}
	return &object{f: f, info: info}, nil
}

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: stat %q: %w", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: stat %q: %w", key, err)
	}
	defer root.Close()
	// The type lives in an attribute read through a descriptor, so Stat opens
	// the file: stat and type then describe the same version.
	f, info, err := openObject(root, key)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("disk: stat %q: %w", key, err)
	}
	f.Close()
	return info, nil
}

func openObject(root *os.Root, key string) (*os.File, storage.ObjectInfo, error) {
	f, err := root.Open(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		// A directory is a prefix of other keys, not an object.
		f.Close()
		return nil, storage.ObjectInfo{}, storage.ErrNotFound
	}
	ct, ok := contentType(f)
	if !ok {
		ct = typeByExtension(key)
	}
	return f, storage.ObjectInfo{Key: key, Size: fi.Size(), ContentType: ct, ModTime: fi.ModTime()}, nil
}

// notFound maps "no such file" and "a parent is a file" to storage.ErrNotFound.
func notFound(err error) error {
	if isNotExist(err) {
		return storage.ErrNotFound
	}
	return err
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Delete removes key and then any directories the removal left empty.
// Deleting a missing key, or a key that names a directory of other keys,
// does nothing.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("disk: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	defer root.Close()
	fi, err := root.Lstat(key)
	switch {
	case isNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("disk: delete %q: %w", key, err)
	case fi.IsDir():
		return nil
	}
	if err := root.Remove(key); err != nil && !isNotExist(err) {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	pruneDirs(root, path.Dir(key))
	return nil
}

// pruneDirs removes dir and its parents while they are empty directories.
// It is best effort: a concurrent Put simply recreates what it needs.
func pruneDirs(root *os.Root, dir string) {
	for ; dir != "."; dir = path.Dir(dir) {
		fi, err := root.Lstat(dir)
		if err != nil || !fi.IsDir() {
			return
		}
		if root.Remove(dir) != nil { // not empty
			return
		}
	}
}

// Ping checks that the root exists and a file can be created in it.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk: ping: %w", err)
	}
	root, err := s.openRoot()
	if err != nil {
		return fmt.Errorf("disk: ping: %w", err)
	}
	defer root.Close()
	name := tmpPrefix + "ping-" + rand.Text()
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fmt.Errorf("disk: ping: %s is not writable: %w", s.dir, err)
	}
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := root.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("disk: ping: %s: %w", s.dir, err)
	}
	return nil
}

// object is an open object backed by an *os.File.
type object struct {
	f    *os.File
	info storage.ObjectInfo
}

func (o *object) Read(p []byte) (int, error)                   { return o.f.Read(p) }
func (o *object) ReadAt(p []byte, off int64) (int, error)      { return o.f.ReadAt(p, off) }
func (o *object) Seek(offset int64, whence int) (int64, error) { return o.f.Seek(offset, whence) }
func (o *object) Close() error                                 { return o.f.Close() }
func (o *object) Info() storage.ObjectInfo                     { return o.info }

// RemoveStaleTemp removes the temporary files (".tmp-*") under the root that
// were last written more than olderThan ago: those of a process killed in
// the middle of a Put. Any live Put's file is younger (it is written in one
// go, then renamed), so several processes may share the root. It returns how
// many it removed; files it cannot remove are skipped and the first such
// error is returned.
func (s *Store) RemoveStaleTemp(olderThan time.Duration) (int, error) {
	root, err := s.openRoot()
	if err != nil {
		return 0, fmt.Errorf("disk: remove stale temporary files: %w", err)
	}
	defer root.Close()
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	var first error
	// Walking the root's own file system never follows a symbolic link out
	// of it; removals go through the os.Root as well.
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if first == nil {
				first = err
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			return nil
		}
		if err := root.Remove(p); err != nil {
			if first == nil {
				first = err
			}
			return nil
		}
		removed++
		pruneDirs(root, path.Dir(p))
		return nil
	})
	if first == nil {
		first = err
	}
	if first != nil {
		return removed, fmt.Errorf("disk: remove stale temporary files: %w", first)
	}
	return removed, nil
}
