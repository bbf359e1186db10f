package tts

import (
	_ "embed"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Voice describes one Kokoro voice. The catalogue is the 54 voices of
// Kokoro-82M v1.0; every engine accepts these ids.
type Voice struct {
	ID           string `json:"id"`
	LanguageCode string `json:"language_code"` // first letter of the id: a, b, e, f, h, i, j, p, z
	Language     string `json:"language"`      // e.g. en-us, en-gb, es
	Gender       string `json:"gender"`        // "female" or "male"
	Grade        string `json:"grade,omitempty"`
}

//go:embed voices.tsv
var voicesTSV string

// Catalogue returns the Kokoro v1.0 voices in their published order.
func Catalogue() []Voice {
	var out []Voice
	for i, line := range strings.Split(strings.TrimSpace(voicesTSV), "\n") {
		if i == 0 || line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 7 {
			continue
		}
		g := "female"
		if f[3] == "M" {
			g = "male"
		}
		out = append(out, Voice{ID: f[0], LanguageCode: f[1], Language: languageName(f[2]), Gender: g, Grade: f[6]})
	}
	return out
}

func languageName(tag string) string {
	if tag == "en-gb" || tag == "en" {
		return "en-gb"
	}
	return tag
}

// VoiceSet is a set of voice ids an engine offers, with lookups.
type VoiceSet map[string]Voice

// NewVoiceSet indexes voices by id.
func NewVoiceSet(voices []Voice) VoiceSet {
	s := make(VoiceSet, len(voices))
	for _, v := range voices {
		s[v.ID] = v
	}
	return s
}

// Sorted returns the voices ordered by language code then id.
func (s VoiceSet) Sorted() []Voice {
	out := make([]Voice, 0, len(s))
	for _, v := range s {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].LanguageCode != out[j].LanguageCode {
			return out[i].LanguageCode < out[j].LanguageCode
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// VoiceWeight is one component of a voice or voice blend.
type VoiceWeight struct {
	ID     string
	Weight float64 // normalised: the weights of a blend sum to 1
}

// MaxBlendVoices bounds how many voices one blend may mix.
const MaxBlendVoices = 8

// ParseVoice parses a voice id or a blend such as "af_bella(2)+af_sky" (the
// Kokoro-FastAPI syntax; a missing weight is 1) against the voices in s.
// Weights are normalised to sum to 1; a voice named twice has its weights
// added. Errors are EINVALID and name the offending part.
func (s VoiceSet) ParseVoice(spec string) ([]VoiceWeight, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, Errorf(EINVALID, "voice: must not be empty")
	}
	if len(spec) > 256 {
		return nil, Errorf(EINVALID, "voice: too long (at most 256 characters)")
	}
	parts := strings.Split(spec, "+")
	if len(parts) > MaxBlendVoices {
		return nil, Errorf(EINVALID, "voice: a blend mixes at most %d voices", MaxBlendVoices)
	}
	var (
		out   []VoiceWeight
		index = map[string]int{}
		total float64
		lang  string
	)
	for _, p := range parts {
		p = strings.TrimSpace(p)
		id, w := p, 1.0
		if open := strings.IndexByte(p, '('); open >= 0 {
			if !strings.HasSuffix(p, ")") {
				return nil, Errorf(EINVALID, "voice: malformed blend part %q (expected id or id(weight))", clip(p))
			}
			id = strings.TrimSpace(p[:open])
			n, err := strconv.ParseFloat(strings.TrimSpace(p[open+1:len(p)-1]), 64)
			if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n <= 0 || n > 100 {
				return nil, Errorf(EINVALID, "voice: weight in %q must be a number above 0 and at most 100", clip(p))
			}
			w = n
		}
		v, ok := s[id]
		if !ok {
			return nil, Errorf(EINVALID, "voice: unknown voice %q; GET /api/voices lists the %d available voices", clip(id), len(s))
		}
		if lang == "" {
			lang = v.LanguageCode
		} else if v.LanguageCode != lang {
			return nil, Errorf(EINVALID, "voice: a blend must mix voices of one language (%q is not %q)", id, lang)
		}
		if i, seen := index[id]; seen {
			out[i].Weight += w
		} else {
			index[id] = len(out)
			out = append(out, VoiceWeight{ID: id, Weight: w})
		}
		total += w
	}
	for i := range out {
		out[i].Weight /= total
	}
	return out, nil
}

// CanonicalVoice formats parsed blend weights back into a stable string, so
// that "af_sky+af_bella(2)" and "af_bella(2)+af_sky" mean the same job.
func CanonicalVoice(ws []VoiceWeight) string {
	if len(ws) == 1 {
		return ws[0].ID
	}
	sorted := append([]VoiceWeight(nil), ws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	parts := make([]string, len(sorted))
	for i, w := range sorted {
		parts[i] = fmt.Sprintf("%s(%s)", w.ID, strconv.FormatFloat(w.Weight, 'f', -1, 64))
	}
	return strings.Join(parts, "+")
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
