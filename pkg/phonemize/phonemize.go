// Package phonemize is Kokoro's English text front end: text → normalised
// text → espeak-ng IPA phonemes → Kokoro token ids → chunks that fit the
// model. It reproduces the JavaScript reference pipeline kokoro-js@1.2.1
// (its normaliser, its punctuation handling and its post-processing of
// espeak-ng's output); golden files made by that package's own code keep it
// honest (scripts/golden-phonemes).
//
// espeak-ng (Debian package espeak-ng) runs as long-lived child processes,
// one pool per language, so a FrontEnd is safe for concurrent use and must be
// closed.
package phonemize

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// The languages a FrontEnd speaks.
const (
	LangAmerican = "en-us" // Kokoro "a" voices; espeak-ng voice en-us
	LangBritish  = "en-gb" // Kokoro "b" voices; espeak-ng voice en
)

// LangForVoice returns the front-end language of a Kokoro voice id (or blend,
// whose voices share one language): "en-us" for a* voices, "en-gb" for b*
// voices. Other languages are not supported by this front end
// (tts.EUNSUPPORTED).
func LangForVoice(voiceID string) (string, error) {
	id := strings.TrimSpace(voiceID)
	switch {
	case strings.HasPrefix(id, "a"):
		return LangAmerican, nil
	case strings.HasPrefix(id, "b"):
		return LangBritish, nil
	}
	return "", tts.Errorf(tts.EUNSUPPORTED, "voice %q: only English voices (a*, b*) are supported by the text front end", clip(voiceID))
}

func clip(s string) string {
	if len(s) > 40 {
		for i := 40; i > 0; i-- {
			if utf8.RuneStart(s[i]) {
				return s[:i] + "…"
			}
		}
	}
	return s
}

// language is what a language tag means to the pipeline.
type language struct {
	voice    string // espeak-ng voice
	american bool   // kokoro-js language "a": extra post-processing
}

func parseLang(lang string) (language, error) {
	switch lang {
	case LangAmerican:
		return language{voice: "en-us", american: true}, nil
	case LangBritish:
		return language{voice: "en", american: false}, nil
	}
	return language{}, tts.Errorf(tts.EUNSUPPORTED, "language %q: the text front end speaks %q and %q", clip(lang), LangAmerican, LangBritish)
}

// Config configures a FrontEnd.
type Config struct {
	// ESpeakPath is the espeak-ng executable; default "espeak-ng" (PATH).
	ESpeakPath string
	// MaxConcurrency bounds the espeak-ng processes per language; default
	// GOMAXPROCS, at most 4.
	MaxConcurrency int
}

// FrontEnd turns English text into Kokoro phonemes, tokens and chunks. It is
// safe for concurrent use; Close ends its espeak-ng processes.
type FrontEnd struct {
	path  string
	pools map[string]*pool // by espeak-ng voice
}

// New checks that espeak-ng works (it starts the American process) and
// returns a FrontEnd. The error names the Debian package espeak-ng when the
// executable is missing or broken.
func New(cfg Config) (*FrontEnd, error) {
	path := cfg.ESpeakPath
	if path == "" {
		path = "espeak-ng"
	}
	if _, err := exec.LookPath(path); err != nil {
		return nil, missingESpeak(path, err)
	}
	n := cfg.MaxConcurrency
	if n <= 0 {
		n = min(runtime.GOMAXPROCS(0), 4)
	}
	f := &FrontEnd{path: path, pools: map[string]*pool{
		"en-us": newPool(path, "en-us", n),
		"en":    newPool(path, "en", n),
	}}
	got, err := f.pools["en-us"].phonemize(context.Background(), []string{"hello"})
	if err == nil && (len(got) != 1 || !strings.Contains(got[0], "l")) {
		err = fmt.Errorf("espeak-ng said %q for \"hello\"", got)
	}
	if err != nil {
		f.Close()
		return nil, missingESpeak(path, err)
	}
	return f, nil
}

// Close ends the espeak-ng processes. Calls made after Close fail.
func (f *FrontEnd) Close() error {
	for _, p := range f.pools {
		p.close()
	}
	return nil
}

// Phonemize returns the Kokoro phonemes of the whole text in lang ("en-us" or
// "en-gb") exactly as kokoro-js@1.2.1's phonemize(text, "a"|"b") does, up to
// differences between espeak-ng versions: normalisation, espeak-ng on the
// text between punctuation, punctuation kept, post-processing.
func (f *FrontEnd) Phonemize(ctx context.Context, text string, lang string) (string, error) {
	l, err := parseLang(lang)
	if err != nil {
		return "", err
	}
	segs, err := f.segments(ctx, text, l)
	if err != nil {
		return "", err
	}
	return postProcess(joinPhonemes(segs), l.american), nil
}

// segments normalises text, splits it into punctuation runs and text parts,
// and phonemizes the parts.
func (f *FrontEnd) segments(ctx context.Context, text string, l language) ([]segment, error) {
	segs := splitSegments(Normalize(text))
	var parts []string
	for _, s := range segs {
		if s.piece >= 0 {
			parts = append(parts, s.say)
		}
	}
	phs, err := f.phonemizeParts(ctx, l, parts)
	if err != nil {
		return nil, err
	}
	k := 0
	for i := range segs {
		if segs[i].piece >= 0 {
			segs[i].phon = phs[k]
			k++
		}
	}
	return segs, nil
}

// phonemizeParts runs espeak-ng on text parts that hold no kokoro-js
// punctuation and no blank line.
func (f *FrontEnd) phonemizeParts(ctx context.Context, l language, parts []string) ([]string, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	p := f.pools[l.voice]
	out, err := p.phonemize(ctx, parts)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("phonemize: %w", err)
	}
	return out, nil
}

// punctuation is the set kokoro-js keeps as tokens and splits the text on.
const punctuation = `;:,.!?¡¿—…"«»“”(){}[]`

func isPunct(r rune) bool { return strings.ContainsRune(punctuation, r) }

// segment is a piece of the normalised text: a run of punctuation (with the
// whitespace around it), kept as is, or a text part phonemized by espeak-ng.
type segment struct {
	text  string // exact normalised text; all texts joined give the whole
	say   string // what espeak-ng reads (text parts only)
	phon  string // phonemes: the text itself for punctuation
	piece int    // index of the text piece between punctuation; -1 for punctuation
	// paragraph is set on a text part that ends at a blank line inside its piece.
	paragraph bool
}

// splitSegments splits normalised text the way kokoro-js does with
// /(\s*[punctuation]+\s*)+/g: every maximal run of whitespace and punctuation
// that holds at least one punctuation mark is kept as is; the text between is
// phonemized. A piece is further cut at blank lines, where espeak-ng ends a
// clause anyway, so the parts' phonemes joined by spaces are the piece's.
func splitSegments(s string) []segment {
	var segs []segment
	piece := 0
	addPiece := func(t string) {
		if t == "" {
			return
		}
		for t != "" {
			end, next := blankLine(t)
			segs = append(segs, segment{text: t[:next], say: t[:end], piece: piece, paragraph: next < len(t)})
			t = t[next:]
		}
		piece++
	}
	last := 0 // start of the pending text piece
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !jsSpace(r) && !isPunct(r) {
			i += size
			continue
		}
		// A run of whitespace and punctuation starts at i.
		j, hasPunct := i, false
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if isPunct(r) {
				hasPunct = true
			} else if !jsSpace(r) {
				break
			}
			j += size
		}
		if hasPunct {
			addPiece(s[last:i])
			segs = append(segs, segment{text: s[i:j], phon: s[i:j], piece: -1})
			last = j
		}
		i = j
	}
	addPiece(s[last:])
	return segs
}

// blankLine finds the first blank line in t: end is where the text before it
// stops and next where the text after it starts; both are len(t) if none.
func blankLine(t string) (end, next int) {
	for i := 0; i < len(t); i++ {
		if t[i] != '\n' {
			continue
		}
		j, newlines := i, 0
		for j < len(t) {
			r, size := utf8.DecodeRuneInString(t[j:])
			if r == '\n' {
				newlines++
			} else if !jsSpace(r) {
				break
			}
			j += size
		}
		if newlines >= 2 && j < len(t) {
			return i, j
		}
		i = j - 1
	}
	return len(t), len(t)
}

// joinPhonemes concatenates the segments' phonemes; consecutive parts of one
// piece are joined by a space (kokoro-js joins espeak-ng's output lines with
// spaces), skipping empty ones.
func joinPhonemes(segs []segment) string {
	var b strings.Builder
	prevPiece, prevNonEmpty := -1, false
	for _, s := range segs {
		if s.piece >= 0 && s.piece == prevPiece {
			if prevNonEmpty && s.phon != "" {
				b.WriteByte(' ')
			}
			prevNonEmpty = prevNonEmpty || s.phon != ""
		} else {
			prevNonEmpty = s.phon != ""
		}
		prevPiece = s.piece
		b.WriteString(s.phon)
	}
	return b.String()
}

// postProcess applies kokoro-js's English fixes to espeak-ng's output and
// trims it.
func postProcess(s string, american bool) string {
	s = strings.ReplaceAll(s, "kəkˈoːɹoʊ", "kˈoʊkəɹoʊ")
	s = strings.ReplaceAll(s, "kəkˈɔːɹəʊ", "kˈəʊkəɹəʊ")
	s = symbolFixes.Replace(s)
	s = spaceBeforeHundred(s)
	s = attachZ(s)
	if american {
		s = flapNinety(s)
	}
	return jsTrim(s)
}

var symbolFixes = strings.NewReplacer("ʲ", "j", "r", "ɹ", "x", "k", "ɬ", "l")

const hundred = "hˈʌndɹɪd"

// spaceBeforeHundred separates "hundred" from a word it is glued to
// (/(?<=[a-zɹː])(?=hˈʌndɹɪd)/g → " ").
func spaceBeforeHundred(s string) string {
	if !strings.Contains(s, hundred) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], hundred) && i > 0 {
			r, _ := utf8.DecodeLastRuneInString(s[:i])
			if ('a' <= r && r <= 'z') || r == 'ɹ' || r == 'ː' {
				b.WriteByte(' ')
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// attachZ glues a lone "z" (a plural or "is" reduced by espeak-ng) to the word
// before it when punctuation, a space or the end follows
// (/ z(?=[;:,.!?¡¿—…"«»“” ]|$)/g → "z").
func attachZ(s string) string {
	if !strings.Contains(s, " z") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], " z") {
			r, _ := utf8.DecodeRuneInString(s[i+2:])
			if i+2 == len(s) || strings.ContainsRune(`;:,.!?¡¿—…"«»“” `, r) {
				b.WriteByte('z')
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// flapNinety writes the American flap in "ninety" as d: "nˈaɪnti" →
// "nˈaɪndi", but not "nineteen" (/(?<=nˈaɪn)ti(?!ː)/g → "di").
func flapNinety(s string) string {
	const nine = "nˈaɪn"
	if !strings.Contains(s, nine+"ti") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "ti") && strings.HasSuffix(s[:i], nine) && !strings.HasPrefix(s[i+2:], "ː") {
			b.WriteString("di")
			i += 2
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}
