package phonemize

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The golden files are written by scripts/golden-phonemes from kokoro-js@1.2.1
// itself (node golden.mjs); never edit them by hand.

type goldenFile struct {
	KokoroJS string `json:"kokoro-js"`
	Language string `json:"language"`
	Cases    []struct {
		ID         string `json:"id"`
		Text       string `json:"text"`
		Normalized string `json:"normalized"`
		Phonemes   string `json:"phonemes"`
	} `json:"cases"`
}

func readGolden(t *testing.T, name string) goldenFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if g.KokoroJS != "1.2.1" || len(g.Cases) == 0 {
		t.Fatalf("%s: unexpected golden file (kokoro-js %q, %d cases)", name, g.KokoroJS, len(g.Cases))
	}
	return g
}

// allowed is an accepted difference between kokoro-js's bundled espeak-ng and
// the system's: for these cases the test asserts the output recorded in the
// allow-list instead of kokoro-js's.
type allowed struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Want     string `json:"want"`
	Reason   string `json:"reason"`
}

func readAllowList(t *testing.T) map[string]allowed {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "allowlist.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Entries []allowed `json:"entries"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]allowed{}
	for _, e := range doc.Entries {
		if e.Reason == "" || e.Want == "" {
			t.Fatalf("allow-list entry %s/%s needs want and reason", e.Language, e.ID)
		}
		out[e.Language+"/"+e.ID] = e
	}
	return out
}

func TestNormalizeGolden(t *testing.T) {
	g := readGolden(t, "normalize.json")
	for _, c := range g.Cases {
		if got := Normalize(c.Text); got != c.Normalized {
			t.Errorf("%s: Normalize(%q)\n got %q\nwant %q", c.ID, c.Text, got, c.Normalized)
		}
	}
}

func TestPhonemizeGolden(t *testing.T) {
	f := frontEnd(t)
	allow := readAllowList(t)
	used := map[string]bool{}
	exact, total := 0, 0
	for _, lang := range []string{LangAmerican, LangBritish} {
		g := readGolden(t, lang+".json")
		if g.Language != lang {
			t.Fatalf("%s.json is for %q", lang, g.Language)
		}
		for _, c := range g.Cases {
			total++
			got, err := f.Phonemize(context.Background(), c.Text, lang)
			if err != nil {
				t.Fatalf("%s/%s: %v", lang, c.ID, err)
			}
			key := lang + "/" + c.ID
			if got == c.Phonemes {
				exact++
				if _, ok := allow[key]; ok {
					t.Errorf("%s: matches kokoro-js exactly; remove it from allowlist.json", key)
				}
				continue
			}
			a, ok := allow[key]
			if !ok {
				t.Errorf("%s: Phonemize(%q)\n got %q\nwant %q (kokoro-js)", key, c.Text, got, c.Phonemes)
				continue
			}
			used[key] = true
			if got != a.Want {
				t.Errorf("%s: allow-listed (%s) but\n got %q\nwant %q", key, a.Reason, got, a.Want)
			}
		}
	}
	for key := range allow {
		if !used[key] {
			t.Errorf("allow-list entry %s matches no differing golden case", key)
		}
	}
	t.Logf("%d of %d golden cases match kokoro-js exactly; %d allow-listed", exact, total, len(used))
}
