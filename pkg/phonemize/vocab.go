package phonemize

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"
	"unicode/utf8"
)

// configJSON is Kokoro-82M v1.0's config.json, byte for byte (sha256
// 5abb01e2403b072bf03d04fde160443e209d7a0dad49a423be15196b9b43c17f).
//
//go:embed config.json
var configJSON []byte

// vocab parses the embedded vocabulary once; the map is never written after.
var vocab = sync.OnceValue(func() map[rune]int64 {
	v, err := parseVocab(configJSON)
	if err != nil {
		panic("phonemize: embedded config.json: " + err.Error())
	}
	return v
})

// parseVocab reads the vocab object of a Kokoro config.json: each key is one
// phoneme symbol (a single code point) and each value its token id.
func parseVocab(config []byte) (map[rune]int64, error) {
	var cfg struct {
		Vocab map[string]int64 `json:"vocab"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Vocab) == 0 {
		return nil, fmt.Errorf("no vocab")
	}
	out := make(map[rune]int64, len(cfg.Vocab))
	for sym, id := range cfg.Vocab {
		r, size := utf8.DecodeRuneInString(sym)
		if size != len(sym) || r == utf8.RuneError {
			return nil, fmt.Errorf("vocab symbol %q is not one code point", sym)
		}
		out[r] = id
	}
	return out, nil
}

// Vocab returns the Kokoro v1.0 vocabulary (phoneme symbol → token id), read
// from an embedded copy of the model's config.json. Id 0, the pad/start/end
// token, has no symbol. The caller owns the returned map.
func Vocab() map[rune]int64 {
	v := vocab()
	out := make(map[rune]int64, len(v))
	for r, id := range v {
		out[r] = id
	}
	return out
}

// Tokenize maps a phoneme string to Kokoro token ids, one per code point,
// dropping symbols the vocabulary does not have (as the reference tokenizer
// does). The result has no start/end pads.
func Tokenize(phonemes string) []int64 {
	v := vocab()
	out := make([]int64, 0, len(phonemes))
	for _, r := range phonemes {
		if id, ok := v[r]; ok {
			out = append(out, id)
		}
	}
	return out
}

// countTokens is len(Tokenize(phonemes)) without the allocation.
func countTokens(phonemes string) int {
	v := vocab()
	n := 0
	for _, r := range phonemes {
		if _, ok := v[r]; ok {
			n++
		}
	}
	return n
}
