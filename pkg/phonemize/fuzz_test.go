package phonemize

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// normalizeGrowth bounds how much Normalize may lengthen its input: the worst
// rule turns "$0.1" (4 bytes) into "0 dollars and 10 cents" (22 bytes).
func normalizeGrowth(n int) int { return 6*n + 16 }

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"", "Dr. Smith paid $12.50 at 7:45 in 1987.", "£1.01 and $5 million, etc.", "U.S.A. e.g. the CDs",
		"1,000-2,000 people; 98.6 degrees", "Yeah!! 10:15:20 1990s X's", "$0.1 $1.2.3 .5.5.5",
		"“quoted” (aside) «guillemets»", "a\n \n\tb\r\u3000c", "\xff\xfe invalid", "$1." + strings.Repeat("9", 40),
		strings.Repeat("a.", 50) + " b", strings.Repeat("$", 30) + "1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Normalize(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Normalize(%q) = %q is not valid UTF-8", s, out)
		}
		if len(out) > normalizeGrowth(len(s)) {
			t.Fatalf("Normalize(%q) grew from %d to %d bytes", s, len(s), len(out))
		}
		if out != jsTrim(out) {
			t.Fatalf("Normalize(%q) = %q is not trimmed", s, out)
		}
	})
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "həlˈoʊ, wˈɜːld!", "«ɹˈiəli»", "ʑʑʑ", "\xff", "ABC abc 123 ;:,.!?—…\"()“”"} {
		f.Add(s)
	}
	v := Vocab()
	valid := map[int64]bool{}
	for _, id := range v {
		valid[id] = true
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokenize(s)
		if len(toks) > utf8.RuneCountInString(s) {
			t.Fatalf("Tokenize(%q) gave %d tokens for %d runes", s, len(toks), utf8.RuneCountInString(s))
		}
		for _, id := range toks {
			if !valid[id] {
				t.Fatalf("Tokenize(%q) gave unknown id %d", s, id)
			}
		}
		if countTokens(s) != len(toks) {
			t.Fatalf("countTokens(%q) = %d, Tokenize gave %d", s, countTokens(s), len(toks))
		}
	})
}

// fakePhonemes stands in for espeak-ng in FuzzChunks so that the cutting
// logic can be fuzzed fast and deterministically: every rune becomes one
// vocabulary symbol (or none for whitespace), so token counts follow the text.
func fakePhonemes(_ context.Context, parts []string) ([]string, error) {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = strings.Map(func(r rune) rune {
			if jsSpace(r) {
				return ' '
			}
			if r < 0x80 && ('a' <= r && r <= 'z') {
				return r
			}
			return 'ə'
		}, p)
	}
	return out, nil
}

// FuzzChunks fuzzes the chunker (with fakePhonemes instead of espeak-ng):
// it never panics, every chunk fits, and the chunks hold all the text.
func FuzzChunks(f *testing.F) {
	for _, s := range []string{
		"", "Hello, world! This is Kokoro speaking.", "One. Two; three: four, five — six… seven? eight!",
		strings.Repeat("word ", 120), strings.Repeat("x", 300), strings.Repeat("!", 300),
		"A heading\n\nBody text. More body text\n\nEnd", "«»()", "...", "a\x00b\xffc",
	} {
		f.Add(s, 1)
		f.Add(s, 7)
		f.Add(s, 40)
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, text string, maxTokens int) {
		if len(text) > 1500 {
			return
		}
		c := chunker{max: clampTokens(maxTokens % 600), american: true, phonemize: fakePhonemes}
		segs := splitSegments(Normalize(text))
		parts := make([]string, 0, len(segs))
		for _, s := range segs {
			if s.piece >= 0 {
				parts = append(parts, s.say)
			}
		}
		phs, _ := fakePhonemes(context.Background(), parts)
		k := 0
		for i := range segs {
			if segs[i].piece >= 0 {
				segs[i].phon = phs[k]
				k++
			}
		}
		groups, err := c.split(context.Background(), segs, levelSentence)
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, g := range groups {
			if len(g) == 0 {
				t.Fatal("empty group")
			}
			if n := countTokens(c.phonemes(g)); n > c.max && !(len(g) == 1 && utf8.RuneCountInString(g[0].text) <= 1) {
				t.Fatalf("group of %d tokens > max %d: %+v", n, c.max, g)
			}
			for _, s := range g {
				all.WriteString(s.text)
			}
		}
		if all.String() != Normalize(text) {
			t.Fatalf("groups do not add up to the text:\n got %q\nwant %q", all.String(), Normalize(text))
		}
		chunks, err := c.chunks(context.Background(), segs)
		if err != nil {
			t.Fatal(err)
		}
		for i, ch := range chunks {
			if len(ch.Tokens) == 0 || len(ch.Tokens) > c.max {
				t.Fatalf("chunk %d has %d tokens (max %d)", i, len(ch.Tokens), c.max)
			}
		}
	})
}
