package espeak

import (
	"math"
	"strconv"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Speaking rates of espeak-ng's -s option: 175 words per minute is its
// default; below 80 it does not go, and above 450 it switches to a
// time-stretching mode that sounds garbled.
const (
	defaultWPM = 175
	minWPM     = 80
	maxWPM     = 450
)

// language returns the espeak-ng voice for a Kokoro language code (the
// first letter of a voice id). These are voice file names, not language
// tags: espeak-ng 1.51 silently drops the "+variant" of a voice chosen by a
// language tag that is not also its file name ("en-gb+f3" and "fr-fr+f3"
// speak with the default male voice), while "en+f3" and "fr+f3" work.
func language(code string) (string, bool) {
	switch code {
	case "a":
		return "en-us", true
	case "b":
		return "en", true // British English
	case "e":
		return "es", true
	case "f":
		return "fr", true // French (France)
	case "h":
		return "hi", true
	case "i":
		return "it", true
	case "j":
		return "ja", true
	case "p":
		return "pt-br", true
	case "z":
		return "cmn", true
	}
	return "", false
}

// variants returns the espeak-ng voice variants used for a gender, in the
// order voices of one language and gender take them. They are the numbered
// variants every espeak-ng data package ships; f1 and m1 (elderly) and m8
// are left out.
func variants(gender string) []string {
	if gender == "female" {
		return []string{"f3", "f4", "f5", "f2"}
	}
	return []string{"m3", "m2", "m4", "m6", "m7", "m5"}
}

// voiceMap assigns every catalogue voice an espeak-ng voice such as
// "en-us+f3": its language, and a variant of its gender. Voices of the same
// language and gender take the variants in turn, so that two Kokoro voices
// usually sound different here too.
func voiceMap(voices []tts.Voice) (map[string]string, error) {
	out := make(map[string]string, len(voices))
	taken := map[string]int{}
	for _, v := range voices {
		lang, ok := language(v.LanguageCode)
		if !ok {
			return nil, tts.Errorf(tts.EINTERNAL, "espeak: no espeak-ng language for voice %q (language code %q)", v.ID, v.LanguageCode)
		}
		vs := variants(v.Gender)
		key := lang + "/" + v.Gender
		out[v.ID] = lang + "+" + vs[taken[key]%len(vs)]
		taken[key]++
	}
	return out, nil
}

// wordsPerMinute converts a Kokoro speed factor to espeak-ng's -s value.
// Zero means the default speed.
func wordsPerMinute(speed float64) (string, error) {
	if speed == 0 {
		speed = tts.DefaultSpeed
	}
	if math.IsNaN(speed) || math.IsInf(speed, 0) || speed < 0 {
		return "", tts.Errorf(tts.EINVALID, "speed: must be a number from %.1f to %.1f", tts.MinSpeed, tts.MaxSpeed)
	}
	wpm := math.Round(defaultWPM * speed)
	return strconv.Itoa(int(math.Min(maxWPM, math.Max(minWPM, wpm)))), nil
}
