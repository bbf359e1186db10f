package phonemize

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// Token limits of a chunk. Kokoro's positions stop at 512, two of which are
// the start and end pads.
const (
	// MaxTokens is the most phoneme tokens one model call accepts.
	MaxTokens = 510
	// DefaultMaxTokens is the chunk size Chunks aims for when asked for 0:
	// short enough for good prosody and early first audio (Kokoro-FastAPI
	// aims for 175–250).
	DefaultMaxTokens = 250
)

// Pauses inserted after a chunk, by the punctuation it ends with.
const (
	PauseParagraph = 600 * time.Millisecond // a blank line or line break
	PauseSentence  = 300 * time.Millisecond // . ! ? …
	PauseClause    = 200 * time.Millisecond // : ;
	PausePhrase    = 100 * time.Millisecond // , —
)

// Chunk is a piece of text small enough for one model call.
type Chunk struct {
	Text       string        // the source text of the chunk (after normalisation)
	Phonemes   string        // phoneme string after post-processing
	Tokens     []int64       // vocab ids, without the leading/trailing 0 pads; len <= maxTokens
	PauseAfter time.Duration // silence to insert after this chunk; 0 for the last
}

// Chunks phonemizes text in lang ("en-us" or "en-gb") and cuts it into
// chunks of at most maxTokens tokens (0 means DefaultMaxTokens; more than
// MaxTokens means MaxTokens). A text too long for one chunk is cut at sentence
// ends and blank lines first; a sentence too long on its own at : and ;, then
// at , and —, then at other punctuation, and only then between words
// (re-phonemizing both sides) or, for a single overlong word, between
// characters. Neighbouring pieces are then packed into chunks while they fit.
// Cutting at punctuation does not change the phonemes: joined, the chunks'
// phonemes are Phonemize's (up to whitespace at the cuts).
//
// No text is dropped, but a chunk that would have no token at all (text made
// only of symbols Kokoro has no phoneme for) is left out, so the result is
// empty for such a text.
func (f *FrontEnd) Chunks(ctx context.Context, text string, lang string, maxTokens int) ([]Chunk, error) {
	l, err := parseLang(lang)
	if err != nil {
		return nil, err
	}
	segs, err := f.segments(ctx, text, l)
	if err != nil {
		return nil, err
	}
	c := chunker{max: clampTokens(maxTokens), american: l.american, phonemize: func(ctx context.Context, parts []string) ([]string, error) {
		return f.phonemizeParts(ctx, l, parts)
	}}
	return c.chunks(ctx, segs)
}

func clampTokens(n int) int {
	switch {
	case n <= 0:
		return DefaultMaxTokens
	case n > MaxTokens:
		return MaxTokens
	}
	return n
}

// chunker cuts phonemized segments into chunks. It is separate from FrontEnd
// so the cutting can be tested and fuzzed with any phonemizer.
type chunker struct {
	max       int
	american  bool
	phonemize func(ctx context.Context, parts []string) ([]string, error)
}

// Cut levels, strongest first.
const (
	levelSentence = iota
	levelClause
	levelPhrase
	levelPunct
	levelWords
)

// cutAfter reports whether a chunk may end after seg at the given level.
func cutAfter(seg segment, level int) bool {
	if seg.piece >= 0 {
		return level == levelSentence && seg.paragraph
	}
	switch level {
	case levelSentence:
		return strings.ContainsAny(seg.text, ".!?…\n")
	case levelClause:
		return strings.ContainsAny(seg.text, ":;")
	case levelPhrase:
		return strings.ContainsAny(seg.text, ",—")
	}
	return true
}

// pauseAfter is the silence after a chunk ending with seg.
func pauseAfter(seg segment) time.Duration {
	switch {
	case seg.piece >= 0 && seg.paragraph, seg.piece < 0 && strings.Contains(seg.text, "\n"):
		return PauseParagraph
	case seg.piece >= 0:
		return 0
	case strings.ContainsAny(seg.text, ".!?…"):
		return PauseSentence
	case strings.ContainsAny(seg.text, ":;"):
		return PauseClause
	case strings.ContainsAny(seg.text, ",—"):
		return PausePhrase
	}
	return 0
}

func (c *chunker) phonemes(segs []segment) string {
	return postProcess(joinPhonemes(segs), c.american)
}

func (c *chunker) fits(segs []segment) bool { return countTokens(c.phonemes(segs)) <= c.max }

func (c *chunker) chunks(ctx context.Context, segs []segment) ([]Chunk, error) {
	groups, err := c.split(ctx, segs, levelSentence)
	if err != nil {
		return nil, err
	}
	out := make([]Chunk, 0, len(groups))
	for _, g := range groups {
		ph := c.phonemes(g)
		toks := Tokenize(ph)
		if len(toks) == 0 {
			continue
		}
		if len(toks) > c.max {
			// Only a single character whose reading alone is longer than
			// max gets here (max is tiny): keep what fits.
			toks = toks[:c.max]
		}
		var text strings.Builder
		for _, s := range g {
			text.WriteString(s.text)
		}
		out = append(out, Chunk{Text: jsTrim(text.String()), Phonemes: ph, Tokens: toks, PauseAfter: pauseAfter(g[len(g)-1])})
	}
	if len(out) > 0 {
		out[len(out)-1].PauseAfter = 0
	}
	return out, nil
}

// split cuts segs into groups that fit, at the given level or finer.
func (c *chunker) split(ctx context.Context, segs []segment, level int) ([][]segment, error) {
	if len(segs) == 0 {
		return nil, nil
	}
	if c.fits(segs) || level > levelWords {
		return [][]segment{segs}, nil
	}
	var units [][]segment
	if level == levelWords {
		for _, s := range segs {
			parts, err := c.splitSegment(ctx, s)
			if err != nil {
				return nil, err
			}
			for _, p := range parts {
				units = append(units, []segment{p})
			}
		}
	} else {
		start := 0
		for i, s := range segs {
			if cutAfter(s, level) {
				units = append(units, segs[start:i+1])
				start = i + 1
			}
		}
		if start < len(segs) {
			units = append(units, segs[start:])
		}
		if len(units) == 1 {
			return c.split(ctx, segs, level+1)
		}
	}
	// Pack neighbours while they fit. A unit too big on its own is cut finer
	// first; its pieces are packed with the units around it too, which only
	// ever removes cuts (the pieces' own cuts stay where they were).
	var out [][]segment
	var cur []segment
	for _, u := range units {
		pieces := [][]segment{u}
		if !c.fits(u) {
			var err error
			if pieces, err = c.split(ctx, u, level+1); err != nil {
				return nil, err
			}
		}
		for _, p := range pieces {
			if cur != nil {
				next := append(append(make([]segment, 0, len(cur)+len(p)), cur...), p...)
				if c.fits(next) {
					cur = next
					continue
				}
				out = append(out, cur)
			}
			cur = p
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, nil
}

// splitSegment cuts one segment into segments that each fit, filling each
// to about nine tenths of max: punctuation between characters; a text part
// between words (or, for one long word, between characters), phonemizing both
// sides again.
func (c *chunker) splitSegment(ctx context.Context, s segment) ([]segment, error) {
	var out []segment
	for !c.fits([]segment{s}) && utf8.RuneCountInString(s.text) > 1 {
		n := countTokens(c.phonemes([]segment{s}))
		left, right := cutNear(s.text, len(s.text)*c.max*9/(10*n))
		var l, r segment
		if s.piece < 0 {
			l = segment{text: left, phon: left, piece: -1}
			r = segment{text: right, phon: right, piece: -1}
		} else {
			// A part's text holds no blank line but may end with one.
			sayL, sayR := jsTrim(left), jsTrim(right)
			phs, err := c.phonemize(ctx, []string{sayL, sayR})
			if err != nil {
				return nil, err
			}
			l = segment{text: left, say: sayL, phon: phs[0], piece: s.piece}
			r = segment{text: right, say: sayR, phon: phs[1], piece: s.piece, paragraph: s.paragraph}
		}
		if c.fits([]segment{l}) {
			out = append(out, l)
		} else {
			sub, err := c.splitSegment(ctx, l)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
		s = r
	}
	return append(out, s), nil
}

// cutNear cuts s (at least two characters) in two non-empty halves: after the
// whitespace run nearest to byte offset target, or between characters at
// target when s has no whitespace inside.
func cutNear(s string, target int) (string, string) {
	best := -1
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !jsSpace(r) {
			i += size
			continue
		}
		j := i + size
		for j < len(s) {
			r2, size2 := utf8.DecodeRuneInString(s[j:])
			if !jsSpace(r2) {
				break
			}
			j += size2
		}
		if i > 0 && j < len(s) && (best < 0 || abs(j-target) < abs(best-target)) {
			best = j
		}
		i = j
	}
	if best < 0 {
		_, first := utf8.DecodeRuneInString(s)
		_, lastSize := utf8.DecodeLastRuneInString(s)
		best = min(max(target, first), len(s)-lastSize)
		for !utf8.RuneStart(s[best]) {
			best--
		}
		if best < first {
			best = first
		}
	}
	return s[:best], s[best:]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
