package phonemize

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestLineModeMatchesOneShot checks the long-lived processes' line protocol
// (and their fast speaking rate) against espeak-ng reading each text alone
// from stdin at its default rate, which is how kokoro-js's phonemizer calls it
// (one espeak_Synth per text).
func TestLineModeMatchesOneShot(t *testing.T) {
	f := frontEnd(t)
	var texts []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			texts = append(texts, s)
		}
	}
	g := readGolden(t, "normalize.json")
	for i, c := range g.Cases {
		if i%4 == 0 { // a quarter of them keeps the test quick
			for _, s := range splitSegments(c.Normalized) {
				if s.piece >= 0 && len(s.say) <= maxLineBytes {
					add(s.say)
				}
			}
		}
	}
	for _, s := range []string{
		"the CEO's", "CEO's\nplan", "FBI\nand NASA", "new\nline in the middle", "MP'S", "AI's",
		"ends with a number 42", "19 87", "x", "I", "'", "-", "ʑʑʑ",
	} {
		add(s)
	}
	for _, voice := range []string{"en-us", "en"} {
		got, err := f.pools[voice].phonemize(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]string, len(texts))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 2)
		for i, text := range texts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				w, err := oneShot(context.Background(), f.path, []string{"-q", "--ipa", "-v", voice}, text)
				if err != nil {
					t.Error(err)
				}
				want[i] = w
			}()
		}
		wg.Wait()
		for i := range texts {
			if got[i] != want[i] {
				t.Errorf("%s %q: line mode %q, alone %q", voice, texts[i], got[i], want[i])
			}
		}
	}
	t.Logf("%d texts x 2 voices", len(texts))
}

func TestEspeakLine(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"hello", "hello ", true},
		{"a\nb", "a\rb ", true},
		{"a\x00b", "ab ", true},
		{strings.Repeat("a", maxLineBytes-1), strings.Repeat("a", maxLineBytes-1) + " ", true},
		{strings.Repeat("a", maxLineBytes), strings.Repeat("a", maxLineBytes) + " ", false},
	} {
		got, ok := espeakLine(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("espeakLine(%.20q) = %.20q, %v; want %.20q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestPoolReplacesDeadProcess kills an idle process behind the pool's back:
// the next call must still succeed, on a fresh process.
func TestPoolReplacesDeadProcess(t *testing.T) {
	frontEnd(t) // skips without espeak-ng
	f, err := New(Config{MaxConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pl := f.pools["en-us"]
	p, err := pl.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pl.release(p, true)
	p.kill()
	got, err := f.Phonemize(context.Background(), "Still here.", LangAmerican)
	if err != nil || got != "stˈɪl hˈɪɹ." {
		t.Fatalf("Phonemize after the process died = %q, %v", got, err)
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.idle) != 1 || pl.idle[0] == p {
		t.Fatalf("pool kept the dead process: %d idle", len(pl.idle))
	}
}
