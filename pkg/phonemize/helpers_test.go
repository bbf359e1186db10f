package phonemize

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

// sharedFrontEnd is one FrontEnd for the whole test binary: starting
// espeak-ng processes is the slow part of these tests.
var (
	sharedOnce sync.Once
	shared     *FrontEnd
	sharedErr  error
)

// frontEnd returns the shared FrontEnd, or skips (fails when CI=true) the
// test when espeak-ng is not installed.
func frontEnd(t testing.TB) *FrontEnd {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		msg := "espeak-ng not found: install the Debian package espeak-ng (apt-get install espeak-ng)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sharedOnce.Do(func() { shared, sharedErr = New(Config{MaxConcurrency: 2}) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}
