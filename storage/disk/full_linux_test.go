package disk_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kokorotts/kokoro-tts/storage/disk"
)

// tmpfs mounts a tmpfs of the given size at a new directory and unmounts it
// in cleanup. It needs root (CAP_SYS_ADMIN): without it the test is skipped,
// except in CI, where the tests run as root.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size)
	if err != nil {
		why := fmt.Sprintf("mounting a tmpfs needs root (uid %d): %v", os.Geteuid(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// TestPutIntoFullDisk: a Put that runs out of space fails with ENOSPC,
// leaves no temporary file, keeps the previous version of its key, and
// gives back the space its partial file took.
func TestPutIntoFullDisk(t *testing.T) {
	root := tmpfs(t, "256k")
	s, err := disk.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const kept = "jobs/1/audio.wav"
	old := make([]byte, 16<<10)
	rand.Read(old)
	if _, err := s.Put(ctx, kept, bytes.NewReader(old), int64(len(old)), "audio/wav"); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 512<<10)
	for _, key := range []string{"jobs/2/audio.wav", kept} {
		_, err := s.Put(ctx, key, bytes.NewReader(big), int64(len(big)), "audio/wav")
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Put(%s) of %d bytes into 256 KiB: %v; want ENOSPC", key, len(big), err)
		}
		if files := listFiles(t, root); len(files) != 1 || files[0] != kept {
			t.Fatalf("files after a Put that ran out of space: %v; want only %s", files, kept)
		}
		if got, err := os.ReadFile(filepath.Join(root, kept)); err != nil || !bytes.Equal(got, old) {
			t.Fatalf("%s changed after a Put that ran out of space (%v)", kept, err)
		}
	}
	// Each failed Put had filled the disk; a partial file left behind would
	// leave no room for this one.
	if _, err := s.Put(ctx, "jobs/3/audio.wav", bytes.NewReader(big[:192<<10]), 192<<10, "audio/wav"); err != nil {
		t.Fatalf("Put after the failed ones: %v", err)
	}
}
