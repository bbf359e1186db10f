package phonemize

import (
	"context"
	"strings"
	"testing"
)

// benchSentence is a typical sentence: about 60 phoneme tokens.
const benchSentence = "Dr. Smith paid $12.50 for the tickets at 7:45, which was a bargain."

func BenchmarkNormalize(b *testing.B) {
	text := strings.Repeat(benchSentence+" ", 10)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Normalize(text)
	}
}

// BenchmarkPhonemizeSentence is the per-sentence cost of Phonemize with the
// long-lived espeak-ng process (line mode).
func BenchmarkPhonemizeSentence(b *testing.B) {
	f := frontEnd(b)
	ctx := context.Background()
	if _, err := f.Phonemize(ctx, benchSentence, LangAmerican); err != nil { // warm the pool
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := f.Phonemize(ctx, benchSentence, LangAmerican); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPhonemizeSentenceOneShot is the same sentence with one espeak-ng
// process per text part, the design this package does not use, for
// comparison.
func BenchmarkPhonemizeSentenceOneShot(b *testing.B) {
	f := frontEnd(b)
	ctx := context.Background()
	segs := splitSegments(Normalize(benchSentence))
	for b.Loop() {
		for _, s := range segs {
			if s.piece >= 0 {
				if _, err := oneShot(ctx, f.path, espeakArgs("en-us"), s.say); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkChunksLongText chunks a 20,000-character text (the default request
// limit) at the default size.
func BenchmarkChunksLongText(b *testing.B) {
	f := frontEnd(b)
	ctx := context.Background()
	text := strings.Repeat(benchSentence+" The committee decided — to everyone's surprise — that the bridge would stay open; repairs would wait. ", 120)[:20000]
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := f.Chunks(ctx, text, LangBritish, 0); err != nil {
			b.Fatal(err)
		}
	}
}
