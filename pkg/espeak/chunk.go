package espeak

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// clean makes client text safe to hand to espeak-ng as plain text: invalid
// UTF-8 and control characters become spaces (a NUL would end espeak's
// input early), format characters (bidi marks, zero-width joiners, soft
// hyphens) are dropped, line breaks are kept for the chunker, and "[[",
// which espeak-ng's command line reads as the start of raw phoneme input,
// is split so that it is spoken as text.
func clean(s string) string {
	s = strings.ToValidUTF8(s, " ")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
			b.WriteByte('\n')
		case unicode.IsSpace(r) || unicode.IsControl(r):
			b.WriteByte(' ')
		case unicode.Is(unicode.Cf, r):
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	for strings.Contains(out, "[[") {
		out = strings.ReplaceAll(out, "[[", "[ [")
	}
	return out
}

// speakable reports whether s has anything but spaces.
func speakable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) }) >= 0
}

// chunk splits text into pieces of at most max runes for separate espeak-ng
// runs, preferring to cut after a sentence, then after a clause, then at a
// space; a run of max runes without any space (a long URL, unspaced CJK
// text with no punctuation) is cut where it must, though never inside a
// UTF-8 sequence or before a combining mark. Pieces are trimmed and never
// empty; together they hold every non-space character of text in order.
func chunk(text string, limit int) []string {
	limit = max(limit, 1)
	var out []string
	rest := strings.TrimSpace(text)
	for rest != "" {
		cut := cutPoint(rest, limit)
		if piece := strings.TrimSpace(rest[:cut]); piece != "" {
			out = append(out, piece)
		}
		rest = strings.TrimSpace(rest[cut:])
	}
	return out
}

// cutPoint returns the byte offset, in (0, the end of the limit-th rune], at
// which to end the next piece of s, which does not start with a space: all
// of s when it fits. It looks at no more than limit+1 runes, so chunking is
// linear in the length of the text.
func cutPoint(s string, limit int) int {
	end, n := 0, 0
	for n < limit && end < len(s) {
		_, size := utf8.DecodeRuneInString(s[end:])
		end += size
		n++
	}
	if end == len(s) {
		return end
	}
	sentence, clause, space := 0, 0, 0
	for i, r := range s[:end] {
		_, size := utf8.DecodeRuneInString(s[i:]) // 1 for an invalid byte
		after := i + size
		switch {
		case r == '\n':
			sentence = after
		case unicode.IsSpace(r):
			space = i
		case isFullStopCJK(r):
			sentence = after
		case isSentenceEnd(r):
			if j := skipClosers(s, after); j <= end && followedBySpace(s, j) {
				sentence = j
			}
		case isClauseCJK(r):
			clause = after
		case isClauseEnd(r):
			if followedBySpace(s, after) {
				clause = after
			}
		}
	}
	switch {
	case sentence > 0:
		return sentence
	case clause > 0:
		return clause
	case space > 0:
		return space
	}
	// No break at all: back off so a combining mark stays with its base.
	cut := end
	for cut > 0 {
		r, _ := utf8.DecodeRuneInString(s[cut:])
		if !unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me) {
			break
		}
		_, prev := utf8.DecodeLastRuneInString(s[:cut])
		cut -= prev
	}
	if cut == 0 {
		cut = end
	}
	return cut
}

// followedBySpace reports whether s[i:] starts with a space or is empty.
func followedBySpace(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsSpace(r)
}

// skipClosers returns the offset after any closing quotes and brackets at
// s[i:], so that `"Stop." Then` is cut after the quote.
func skipClosers(s string, i int) int {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !strings.ContainsRune(`"')]}’”»›」』`, r) {
			break
		}
		i += size
	}
	return i
}

// isSentenceEnd covers Latin, Greek, Arabic and Devanagari sentence
// punctuation, which ends a sentence when a space follows.
func isSentenceEnd(r rune) bool {
	return strings.ContainsRune(".!?…\u037E\u0964\u0965\u061F\u06D4", r)
}

// isFullStopCJK covers full-width sentence punctuation, written without a
// following space.
func isFullStopCJK(r rune) bool {
	return strings.ContainsRune("。！？｡", r)
}

func isClauseEnd(r rune) bool {
	return strings.ContainsRune(",;:–—\u060C", r)
}

func isClauseCJK(r rune) bool {
	return strings.ContainsRune("、，；：", r)
}
