package kokoro

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// realFrontEnd starts the real English front end (espeak-ng processes).
func realFrontEnd(t *testing.T) *phonemize.FrontEnd {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		need(t, err)
	}
	fe, err := phonemize.New(phonemize.Config{MaxConcurrency: 2})
	if err != nil {
		need(t, err)
	}
	t.Cleanup(func() { fe.Close() })
	return fe
}

// The exact ids of a sentence, from the real front end, reach the model.
func TestExactIDsForASentence(t *testing.T) {
	fe := realFrontEnd(t)
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe})
	pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "Hello world.", Voice: "af_heart"})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeOne(t, pcm.Samples)
	// "həlˈoʊ wˈɜːld." in Kokoro v1.0's vocab.
	want := []int64{0, 50, 83, 54, 156, 57, 135, 16, 65, 156, 87, 158, 54, 46, 4, 0}
	if !equalIDs(got.ids, want) {
		t.Fatalf("ids = %v, want %v", got.ids, want)
	}
	if !equalFloats(got.style, styleRow(readPack(t, "af_heart"), len(want)-2)) {
		t.Fatal("style is not row n-1 of af_heart")
	}
}

// A text of more than 2,000 characters is chunked by the front end, and the
// tokens of every chunk reach the model in order, joined with the pauses the
// front end asked for.
func TestLongTextChunksReachTheModelInOrder(t *testing.T) {
	fe := realFrontEnd(t)
	var b strings.Builder
	sentences := []string{
		"The quick brown fox jumps over the lazy dog.",
		"On the second of March, 1987, Dr. Smith paid $12.50 for a map; it was worth every cent.",
		"Would you believe it, she asked, that the river runs backwards at 7:45 each evening?",
		"Kokoro speaks English with American and British voices.",
		"Long paragraphs are cut at sentence ends first, then at colons and semicolons, then at commas.",
	}
	for i := 0; b.Len() < 2200; i++ {
		b.WriteString(sentences[i%len(sentences)])
		if i%4 == 3 {
			b.WriteString("\n\n")
		} else {
			b.WriteString(" ")
		}
	}
	text := b.String()
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe, MaxConcurrency: 2})
	var calls int
	pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: text, Voice: "bm_george", Speed: 0.8,
		Progress: func(done, total int) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := fe.Chunks(context.Background(), text, "en-gb", DefaultChunkTokensCPU)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 10 {
		t.Fatalf("%d chunks for %d characters, want at least 10 of at most %d tokens", len(chunks), len(text), DefaultChunkTokensCPU)
	}
	segs, err := decodeEcho(pcm.Samples)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != len(chunks) || calls != len(chunks) {
		t.Fatalf("%d segments and %d progress calls, want %d chunks", len(segs), calls, len(chunks))
	}
	george := readPack(t, "bm_george")
	for i, c := range chunks {
		if len(c.Tokens) > DefaultChunkTokensCPU {
			t.Fatalf("chunk %d has %d tokens", i, len(c.Tokens))
		}
		if !equalIDs(segs[i].ids, padded(c.Tokens)) {
			t.Fatalf("chunk %d (%q): ids differ from the front end's tokens", i, c.Text)
		}
		if segs[i].speed != 0.8 || !equalFloats(segs[i].style, styleRow(george, len(c.Tokens))) {
			t.Fatalf("chunk %d: speed %v or style row wrong", i, segs[i].speed)
		}
		if i > 0 {
			// 240 trailing + 240 leading zeros of the fixture, plus the pause.
			gap := segs[i].start - segs[i-1].end
			want := 2*echoPad + int(chunks[i-1].PauseAfter.Seconds()*24000+0.5)
			if gap != want {
				t.Fatalf("gap before chunk %d = %d samples, want %d (pause %v)", i, gap, want, chunks[i-1].PauseAfter)
			}
		}
	}
}
