package phonemize

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

var update = flag.Bool("update", false, "rewrite testdata/chunks.golden.json from the current code")

// stripSpace removes all whitespace, to compare texts whose cuts moved spaces.
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || jsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// checkChunks asserts what every Chunks result must satisfy.
func checkChunks(t *testing.T, text string, chunks []Chunk, max int) {
	t.Helper()
	var joined strings.Builder
	for i, c := range chunks {
		if len(c.Tokens) == 0 || len(c.Tokens) > max {
			t.Errorf("chunk %d has %d tokens (max %d): %q", i, len(c.Tokens), max, c.Text)
		}
		if !reflect.DeepEqual(c.Tokens, Tokenize(c.Phonemes)) {
			t.Errorf("chunk %d: tokens are not Tokenize(phonemes)", i)
		}
		if c.Text != jsTrim(c.Text) || c.Phonemes != jsTrim(c.Phonemes) {
			t.Errorf("chunk %d is not trimmed: %q / %q", i, c.Text, c.Phonemes)
		}
		if c.PauseAfter < 0 || (i == len(chunks)-1 && c.PauseAfter != 0) {
			t.Errorf("chunk %d pause %v", i, c.PauseAfter)
		}
		joined.WriteString(c.Text)
	}
	if got, want := stripSpace(joined.String()), stripSpace(Normalize(text)); got != want {
		t.Errorf("chunk texts do not add up to the normalised text:\n got %q\nwant %q", got, want)
	}
}

func longText() string {
	var b strings.Builder
	for i := 0; i < 12; i++ {
		b.WriteString("Dr. Smith paid $12.50 at 7:45 in 1987, which was a lot; really. ")
		b.WriteString("The committee, after long deliberation and several postponements, decided — to everyone's surprise — that the old bridge would stay open until 2030: repairs would wait. ")
		if i%4 == 3 {
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

func TestChunksLimits(t *testing.T) {
	f := frontEnd(t)
	text := longText()
	whole, err := f.Phonemize(context.Background(), text, LangAmerican)
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{0, 60, 130, 250, 510, 1000} {
		chunks, err := f.Chunks(context.Background(), text, LangAmerican, max)
		if err != nil {
			t.Fatal(err)
		}
		limit := clampTokens(max)
		checkChunks(t, text, chunks, limit)
		// Cuts at punctuation do not change the phonemes.
		if limit >= 130 {
			var ph []string
			for _, c := range chunks {
				ph = append(ph, c.Phonemes)
			}
			if stripSpace(strings.Join(ph, " ")) != stripSpace(whole) {
				t.Errorf("max %d: chunk phonemes differ from Phonemize", max)
			}
		}
		// Packing: no two neighbours would have fitted together (the
		// whitespace between them counts too, a few tokens at most).
		for i := 1; i < len(chunks); i++ {
			if len(chunks[i-1].Tokens)+len(chunks[i].Tokens)+4 <= limit {
				t.Errorf("max %d: chunks %d and %d (%d + %d tokens) were not packed", max, i-1, i, len(chunks[i-1].Tokens), len(chunks[i].Tokens))
			}
		}
		t.Logf("max %d: %d chunks", max, len(chunks))
	}
}

func TestChunksPreferStrongCuts(t *testing.T) {
	f := frontEnd(t)
	// Two sentences that fit together in 510 but not in 100 tokens: the cut
	// is at the sentence end, not at the commas.
	text := "The first sentence, which is fairly long, ends here. The second one, also long, ends there."
	chunks, err := f.Chunks(context.Background(), text, LangBritish, 60)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, text, chunks, 60)
	if len(chunks) != 2 || chunks[0].Text != "The first sentence, which is fairly long, ends here." || chunks[0].PauseAfter != PauseSentence {
		t.Fatalf("chunks = %+v", chunks)
	}
	// With a smaller limit the sentence is cut at a comma, then at a colon.
	chunks, err = f.Chunks(context.Background(), "Item one, item two: item three, item four; item five and item six.", LangAmerican, 20)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, "Item one, item two: item three, item four; item five and item six.", chunks, 20)
	var pauses []time.Duration
	var texts []string
	for _, c := range chunks {
		pauses = append(pauses, c.PauseAfter)
		texts = append(texts, c.Text)
	}
	t.Logf("%q %v", texts, pauses)
	for i, c := range chunks[:len(chunks)-1] {
		last := c.Text[len(c.Text)-1]
		want := map[byte]time.Duration{',': PausePhrase, ':': PauseClause, ';': PauseClause, '.': PauseSentence}[last]
		if c.PauseAfter != want { // 0 after a cut between words
			t.Errorf("chunk %d %q: pause %v, want %v", i, c.Text, c.PauseAfter, want)
		}
	}
}

func TestChunksWordsAndCharacters(t *testing.T) {
	f := frontEnd(t)
	words := strings.Repeat("banana split ", 80) // no punctuation at all
	for _, text := range []string{words, strings.Repeat("x", 150), strings.Repeat("!", 700)} {
		chunks, err := f.Chunks(context.Background(), text, LangAmerican, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) < 2 {
			t.Fatalf("%.20q: %d chunks", text, len(chunks))
		}
		checkChunks(t, text, chunks, 50)
	}
}

func TestChunksParagraphs(t *testing.T) {
	f := frontEnd(t)
	text := "A heading without a stop\n\nThe body of the text follows here. It has two sentences."
	chunks, err := f.Chunks(context.Background(), text, LangAmerican, 40)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, text, chunks, 40)
	if chunks[0].Text != "A heading without a stop" || chunks[0].PauseAfter != PauseParagraph {
		t.Errorf("first chunk %+v", chunks[0])
	}
}

func TestChunksEmpty(t *testing.T) {
	f := frontEnd(t)
	for _, text := range []string{"", "   ", "()", "\n\n", "(\n)"} {
		chunks, err := f.Chunks(context.Background(), text, LangAmerican, 0)
		if err != nil || len(chunks) != 0 {
			t.Errorf("Chunks(%q) = %+v, %v; want none", text, chunks, err)
		}
	}
	chunks, err := f.Chunks(context.Background(), "... «»", LangAmerican, 0) // «» normalise to ""
	if err != nil || len(chunks) != 1 || !reflect.DeepEqual(chunks[0].Tokens, []int64{4, 4, 4, 16, 11, 11}) {
		t.Errorf("Chunks(\"... «»\") = %+v, %v", chunks, err)
	}
}

type chunkGolden struct {
	Lang      string        `json:"lang"`
	MaxTokens int           `json:"max_tokens"`
	Text      string        `json:"text"`
	Chunks    []goldenChunk `json:"chunks"`
}

// goldenChunk is a Chunk written compactly for review.
type goldenChunk struct {
	Text       string `json:"text"`
	Phonemes   string `json:"phonemes"`
	Tokens     string `json:"tokens"`
	PauseAfter string `json:"pause_after"`
}

func toGolden(c Chunk) goldenChunk {
	ids := make([]string, len(c.Tokens))
	for i, id := range c.Tokens {
		ids[i] = strconv.FormatInt(id, 10)
	}
	return goldenChunk{Text: c.Text, Phonemes: c.Phonemes, Tokens: strings.Join(ids, " "), PauseAfter: c.PauseAfter.String()}
}

// TestChunksGolden pins chunks and token ids for a few texts (go test -update
// rewrites the file; review the diff).
func TestChunksGolden(t *testing.T) {
	f := frontEnd(t)
	path := filepath.Join("testdata", "chunks.golden.json")
	cases := []chunkGolden{
		{Lang: LangAmerican, MaxTokens: 0, Text: "Hello, world! This is Kokoro speaking."},
		{Lang: LangBritish, MaxTokens: 0, Text: "Dr. Smith paid £3.50 at 7:45 in 1987 (really)."},
		{Lang: LangAmerican, MaxTokens: 40, Text: "The meeting is at 10:15; please don't be late: it matters, truly. See you there!"},
		{Lang: LangBritish, MaxTokens: 30, Text: "A heading\n\nSome body text that runs on without any punctuation for quite a while longer"},
	}
	for i := range cases {
		chunks, err := f.Chunks(context.Background(), cases[i].Text, cases[i].Lang, cases[i].MaxTokens)
		if err != nil {
			t.Fatal(err)
		}
		checkChunks(t, cases[i].Text, chunks, clampTokens(cases[i].MaxTokens))
		for _, c := range chunks {
			cases[i].Chunks = append(cases[i].Chunks, toGolden(c))
		}
	}
	got, err := json.MarshalIndent(cases, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestChunksGolden -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("chunks differ from %s (run with -update and review the diff):\n%s", path, got)
	}
}
