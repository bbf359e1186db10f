package phonemize

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestLangForVoice(t *testing.T) {
	for _, c := range []struct {
		voice, want string
	}{
		{"af_heart", LangAmerican},
		{"am_michael", LangAmerican},
		{"af_bella(2)+af_sky", LangAmerican},
		{"bf_emma", LangBritish},
		{"bm_george", LangBritish},
	} {
		got, err := LangForVoice(c.voice)
		if err != nil || got != c.want {
			t.Errorf("LangForVoice(%q) = %q, %v; want %q", c.voice, got, err, c.want)
		}
	}
	for _, voice := range []string{"ef_dora", "jf_alpha", "zf_xiaobei", "ff_siwis", "", " ", "x"} {
		_, err := LangForVoice(voice)
		if tts.ErrorCode(err) != tts.EUNSUPPORTED {
			t.Errorf("LangForVoice(%q) error %v, want code %s", voice, err, tts.EUNSUPPORTED)
		}
	}
}

func TestUnsupportedLanguage(t *testing.T) {
	f := frontEnd(t)
	for _, lang := range []string{"en", "es", "a", "EN-US", ""} {
		if _, err := f.Phonemize(context.Background(), "hello", lang); tts.ErrorCode(err) != tts.EUNSUPPORTED {
			t.Errorf("Phonemize(lang %q) error %v, want %s", lang, err, tts.EUNSUPPORTED)
		}
		if _, err := f.Chunks(context.Background(), "hello", lang, 0); tts.ErrorCode(err) != tts.EUNSUPPORTED {
			t.Errorf("Chunks(lang %q) error %v, want %s", lang, err, tts.EUNSUPPORTED)
		}
	}
}

func TestVocab(t *testing.T) {
	v := Vocab()
	if len(v) != 114 {
		t.Fatalf("vocab has %d symbols, want 114", len(v))
	}
	for sym, id := range map[rune]int64{';': 1, '.': 4, ' ': 16, 'a': 43, 'ɹ': 123, 'ˈ': 156, 'ː': 158, 'ᵻ': 177, '“': 14} {
		if v[sym] != id {
			t.Errorf("vocab[%q] = %d, want %d", sym, v[sym], id)
		}
	}
	seen := map[int64]rune{}
	for sym, id := range v {
		if id <= 0 || id >= 178 {
			t.Errorf("vocab[%q] = %d out of range", sym, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("id %d used by %q and %q", id, other, sym)
		}
		seen[id] = sym
	}
	v['a'] = 999 // the caller's copy
	if Vocab()['a'] != 43 {
		t.Error("Vocab returned the shared map")
	}
	// The embedded file is the model's config.json, byte for byte.
	shared, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "kokoro", "config.json"))
	if err == nil && string(shared) != string(configJSON) {
		t.Error("config.json differs from shared/kokoro/config.json")
	}
}

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int64
	}{
		{"", []int64{}},
		{"həlˈoʊ, wˈɜːld!", []int64{50, 83, 54, 156, 57, 135, 3, 16, 65, 156, 87, 158, 54, 46, 5}},
		{"«ɹˈiəli»", []int64{123, 156, 51, 83, 54, 51}}, // « » are not in the vocab
		{"g\n\tX", []int64{}}, // ASCII g is not a Kokoro symbol (ɡ is)
		{"\xff\xfe", []int64{}},
	} {
		got := Tokenize(c.in)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Tokenize(%q) = %v, want %v", c.in, got, c.want)
		}
		if n := countTokens(c.in); n != len(c.want) {
			t.Errorf("countTokens(%q) = %d, want %d", c.in, n, len(c.want))
		}
	}
}

func TestNormalizeCases(t *testing.T) {
	// Expectations checked against kokoro-js@1.2.1 (see testdata/golden for
	// the generated ones); these document the behaviour one rule at a time.
	for _, c := range []struct{ in, want string }{
		{"“Hi” ‘there’", `"Hi" 'there'`},
		{"(aside) «quoted»", `«aside» "quoted"`},
		{"Dr. Who and Dr. who", "Doctor Who and Dr. who"},
		{"DR. NO, MR. X, Mr. y, MS. Z, Ms. q, MRS. P, Mrs. r", "Doctor NO, Mister X, Mister y, Miss Z, Miss q, Mrs P, Mrs r"},
		{"apples etc. Then", "apples etc. Then"},
		{"apples etc.", "apples etc"},
		{"Yeah yea YEAH yeahs", "Ye'a ye'a Ye'a yeahs"},
		{"at 7:45, 3:00, 9:05, 12:30, 13:45", "at 7 45, 3 o'clock, 9 oh 5, 12 30, 13:45"},
		{"in 1987, 2004, 1905, 1900, 2010, 1066, 1990s", "in 19 87, 2004, 19 oh 5, 19 hundred, 20 10, 1066, 19 90s"},
		{"$12.50 £10 £1 $1.01 £0.5 $5 million $3 Billion", "12 dollars and 50 cents 10 pounds 1 pound 1 dollar and 1 cent 0 pounds and 50 pence 5 million dollars 3 Billion dollars"},
		{"1,234,567 people", "1234567 people"},
		{"98.6 and .5", "98 point 6 and  point 5"},
		{"pages 9-11", "pages 9 to 11"},
		{"U.S.A. and e.g. this", "U-S-A- and e-g- this"},
		{"the U.S.A. Then", "the U-S-A. Then"},
		{"CDs, MP's, AIs, X's, 90S", "CD'S, MP'S, AIs, X's, 90 S"},
		{"a  b  c", "a b  c"}, // kokoro-js collapses only the first run
		{"a\n \nb\tc\r", "a\n\nb c"},
		{"  padded  ", "padded"},
		{"bad \xff byte", "bad \uFFFD byte"},
	} {
		if got := Normalize(c.in); got != c.want {
			t.Errorf("Normalize(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestPostProcess(t *testing.T) {
	for _, c := range []struct {
		in       string
		american bool
		want     string
	}{
		{"kəkˈoːɹoʊ ɪz", true, "kˈoʊkəɹoʊ ɪz"},
		{"kəkˈɔːɹəʊ", false, "kˈəʊkəɹəʊ"},
		{"rʲxɬ", false, "ɹjkl"},
		{"nˈaɪntiːnhˈʌndɹɪd", true, "nˈaɪntiːn hˈʌndɹɪd"},
		{"tˈuː hˈʌndɹɪd", true, "tˈuː hˈʌndɹɪd"},
		{"ðə kˈæts z. ɪt z", true, "ðə kˈætsz. ɪtz"},
		{"ɪt z ɡˈʊd ɪz", true, "ɪtz ɡˈʊd ɪz"},
		{"ɪt zɪ", true, "ɪt zɪ"},
		{"nˈaɪnti nˈaɪntiːn", true, "nˈaɪndi nˈaɪntiːn"},
		{"nˈaɪnti", false, "nˈaɪnti"},
		{"  spaced  ", false, "spaced"},
	} {
		if got := postProcess(c.in, c.american); got != c.want {
			t.Errorf("postProcess(%q, %v) = %q, want %q", c.in, c.american, got, c.want)
		}
	}
}

func TestSplitSegments(t *testing.T) {
	type seg struct {
		Text  string
		Piece int
		Para  bool
	}
	for _, c := range []struct {
		in   string
		want []seg
	}{
		{"", nil},
		{"hello", []seg{{"hello", 0, false}}},
		{"Hi, you there!", []seg{{"Hi", 0, false}, {", ", -1, false}, {"you there", 1, false}, {"!", -1, false}}},
		{"«a» b", []seg{{"«", -1, false}, {"a", 0, false}, {"» ", -1, false}, {"b", 1, false}}},
		{"one\n\ntwo three\nfour", []seg{{"one\n\n", 0, true}, {"two three\nfour", 0, false}}},
		{"a . . b", []seg{{"a", 0, false}, {" . . ", -1, false}, {"b", 1, false}}},
	} {
		var got []seg
		for _, s := range splitSegments(c.in) {
			got = append(got, seg{s.text, s.piece, s.paragraph})
			if s.piece < 0 && s.phon != s.text {
				t.Errorf("punctuation segment %q has phonemes %q", s.text, s.phon)
			}
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitSegments(%q)\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

func TestPhonemizeConcurrent(t *testing.T) {
	f := frontEnd(t)
	g := readGolden(t, "en-us.json")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(g.Cases); i += 3 {
				c := g.Cases[i]
				got, err := f.Phonemize(context.Background(), c.Text, LangAmerican)
				if err != nil {
					errs <- err
					return
				}
				if got != c.Phonemes {
					errs <- errors.New(c.ID + ": " + got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPhonemizeCanceled(t *testing.T) {
	f := frontEnd(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Phonemize(ctx, "This will not be read.", LangBritish); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Phonemize error = %v, want context.Canceled", err)
	}
	// The pool recovers: a later call works.
	got, err := f.Phonemize(context.Background(), "Hello.", LangBritish)
	if err != nil || got != "həlˈəʊ." {
		t.Fatalf("Phonemize after cancel = %q, %v", got, err)
	}
}

func TestPhonemizeHostileText(t *testing.T) {
	f := frontEnd(t)
	// Text that looks like the sentinel's output or phoneme input must not
	// confuse the line protocol: the next call still gets its own answer.
	for _, text := range []string{"ʑʑ", "ʑʑʑʑʑʑʑʑ", "Z;Z;", "[[Z;Z;]]", "ź", "a\x00b", "\r\n\r\n", strings.Repeat("x", 3000), "\u2028\u2029"} {
		if _, err := f.Phonemize(context.Background(), text, LangAmerican); err != nil {
			t.Fatalf("Phonemize(%q): %v", text, err)
		}
		got, err := f.Phonemize(context.Background(), "The end.", LangAmerican)
		if err != nil || got != "ðɪ ˈɛnd." {
			t.Fatalf("after %q: Phonemize(\"The end.\") = %q, %v", text, got, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	_, err := New(Config{ESpeakPath: filepath.Join(t.TempDir(), "no-espeak-ng")})
	if err == nil || !strings.Contains(err.Error(), "apt-get install espeak-ng") {
		t.Fatalf("New with a missing binary: %v; want an error naming the espeak-ng package", err)
	}
	// An executable that is not espeak-ng.
	fake := filepath.Join(t.TempDir(), "fake")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{ESpeakPath: fake}); err == nil || !strings.Contains(err.Error(), "espeak-ng") {
		t.Fatalf("New with a broken binary: %v", err)
	}
}

func TestClosed(t *testing.T) {
	frontEnd(t) // skips without espeak-ng
	f, err := New(Config{MaxConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Phonemize(context.Background(), "hello", LangAmerican); !errors.Is(err, errClosed) {
		t.Fatalf("Phonemize after Close: %v", err)
	}
}
