package tts

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func ptr(f float64) *float64 { return &f }
func iptr(n int) *int        { return &n }

func TestRequestValidate(t *testing.T) {
	voices := NewVoiceSet(Catalogue())
	lim := Limits{MaxTextChars: 100, Voices: voices}
	cases := []struct {
		name    string
		req     Request
		code    string
		message string // substring
	}{
		{"ok minimal", Request{Text: "Hello"}, "", ""},
		{"empty text", Request{Text: ""}, EINVALID, "text"},
		{"whitespace text", Request{Text: " \t\n\u00a0\u2003"}, EINVALID, "visible"},
		{"zero width only", Request{Text: "\u200b\u200d"}, EINVALID, "visible"},
		{"control only", Request{Text: "\x01\x02"}, EINVALID, "visible"},
		{"invalid utf8", Request{Text: "a\xffb"}, EINVALID, "UTF-8"},
		{"too long", Request{Text: strings.Repeat("a", 101)}, ETOOLARGE, "maximum of 100"},
		{"exactly max in runes", Request{Text: strings.Repeat("é", 100)}, "", ""},
		{"unknown voice", Request{Text: "Hi", Voice: "xx_nobody"}, EINVALID, "unknown voice"},
		{"blend", Request{Text: "Hi", Voice: "af_bella(2)+af_sky"}, "", ""},
		{"blend mixed languages", Request{Text: "Hi", Voice: "af_bella+bf_emma"}, EINVALID, "one language"},
		{"blend bad weight", Request{Text: "Hi", Voice: "af_bella(-1)+af_sky"}, EINVALID, "weight"},
		{"blend unclosed", Request{Text: "Hi", Voice: "af_bella(2+af_sky"}, EINVALID, "voice"},
		{"speed low", Request{Text: "Hi", Speed: ptr(0.49)}, EINVALID, "speed: must be a number from 0.5 to 2.0"},
		{"speed high", Request{Text: "Hi", Speed: ptr(2.01)}, EINVALID, "speed"},
		{"speed nan", Request{Text: "Hi", Speed: ptr(math.NaN())}, EINVALID, "speed"},
		{"speed inf", Request{Text: "Hi", Speed: ptr(math.Inf(1))}, EINVALID, "speed"},
		{"speed edge", Request{Text: "Hi", Speed: ptr(2.0)}, "", ""},
		{"format unknown", Request{Text: "Hi", Format: "ogg"}, EINVALID, `format: must be one of "mp3", "wav"`},
		{"format case", Request{Text: "Hi", Format: "WAV"}, "", ""},
		{"queue unknown", Request{Text: "Hi", Queue: "urgent"}, EINVALID, "queue"},
		{"mp3 44.1k 128k", Request{Text: "Hi", SampleRate: iptr(44100), BitrateKbps: iptr(128)}, "", ""},
		{"mp3 24k 128k", Request{Text: "Hi", BitrateKbps: iptr(128)}, "", ""},
		{"mp3 24k 320k", Request{Text: "Hi", BitrateKbps: iptr(320)}, EINVALID, "bitrate_kbps: must be one of"},
		{"mp3 48k 320k", Request{Text: "Hi", SampleRate: iptr(48000), BitrateKbps: iptr(320)}, "", ""},
		{"odd sample rate", Request{Text: "Hi", SampleRate: iptr(12345)}, EINVALID, "sample_rate: must be one of"},
		{"opus 44.1k", Request{Text: "Hi", Format: "opus", SampleRate: iptr(44100)}, EINVALID, "sample_rate"},
		{"opus 300k", Request{Text: "Hi", Format: "opus", BitrateKbps: iptr(300)}, EINVALID, "6 to 256"},
		{"aac 24k 200k", Request{Text: "Hi", Format: "aac", BitrateKbps: iptr(200)}, EINVALID, "8 to 144"},
		{"aac 48k 200k", Request{Text: "Hi", Format: "aac", SampleRate: iptr(48000), BitrateKbps: iptr(200)}, "", ""},
		{"flac bitrate", Request{Text: "Hi", Format: "flac", BitrateKbps: iptr(64)}, EINVALID, "lossless"},
		{"negative bitrate", Request{Text: "Hi", BitrateKbps: iptr(-5)}, EINVALID, "positive"},
		{"wav 16k", Request{Text: "Hi", Format: "wav", SampleRate: iptr(16000)}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.req.Validate(lim)
			if got := ErrorCode(err); got != c.code {
				t.Fatalf("code = %q, want %q (err %v)", got, c.code, err)
			}
			if c.message != "" && !strings.Contains(ErrorMessage(err), c.message) {
				t.Fatalf("message %q does not contain %q", ErrorMessage(err), c.message)
			}
		})
	}
}

func TestRequestDefaults(t *testing.T) {
	v, err := Request{Text: "Hello"}.Validate(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Voice != DefaultVoice || v.Speed != DefaultSpeed || v.Format != DefaultFormat || v.Queue != QueueInteractive {
		t.Fatalf("defaults not applied: %+v", v)
	}
}

func TestParseVoiceWeights(t *testing.T) {
	s := NewVoiceSet(Catalogue())
	ws, err := s.ParseVoice(" af_bella(2) + af_sky ")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].ID != "af_bella" || math.Abs(ws[0].Weight-2.0/3) > 1e-12 || math.Abs(ws[1].Weight-1.0/3) > 1e-12 {
		t.Fatalf("weights = %+v", ws)
	}
	ws, err = s.ParseVoice("af_sky+af_sky(3)")
	if err != nil || len(ws) != 1 || ws[0].Weight != 1 {
		t.Fatalf("repeated voice: %+v %v", ws, err)
	}
	a, _ := s.ParseVoice("af_bella(2)+af_sky")
	b, _ := s.ParseVoice("af_sky(1)+af_bella(2.0)")
	if CanonicalVoice(a) != CanonicalVoice(b) {
		t.Fatalf("canonical forms differ: %q vs %q", CanonicalVoice(a), CanonicalVoice(b))
	}
	if _, err := s.ParseVoice(strings.Repeat("af_sky+", MaxBlendVoices) + "af_sky"); ErrorCode(err) != EINVALID {
		t.Fatalf("too many parts accepted: %v", err)
	}
}

func TestCatalogue(t *testing.T) {
	c := Catalogue()
	if len(c) != 54 {
		t.Fatalf("catalogue has %d voices, want 54", len(c))
	}
	s := NewVoiceSet(c)
	if v := s["bf_emma"]; v.Language != "en-gb" || v.Gender != "female" || v.LanguageCode != "b" {
		t.Fatalf("bf_emma = %+v", v)
	}
	if v := s["af_heart"]; v.Grade != "A" {
		t.Fatalf("af_heart grade = %q", v.Grade)
	}
}

// FuzzValidate: validation never panics, and whatever it accepts is within
// the limits.
func FuzzValidate(f *testing.F) {
	f.Add("Hello world", "af_heart", 1.0, "mp3")
	f.Add("", "", 0.0, "")
	f.Add("\u200b", "af_bella(2)+af_sky", 2.5, "wav")
	f.Add("a\xff", "af_bella((2)", math.NaN(), "WAV")
	f.Add(strings.Repeat("x", 300), "af_sky(1e309)", -1.0, "ogg")
	voices := NewVoiceSet(Catalogue())
	f.Fuzz(func(t *testing.T, text, voice string, speed float64, format string) {
		v, err := Request{Text: text, Voice: voice, Speed: &speed, Format: format}.Validate(Limits{MaxTextChars: 200, Voices: voices})
		if err != nil {
			if ErrorCode(err) == EINTERNAL || ErrorMessage(err) == "" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if utf8.RuneCountInString(v.Text) > 200 || v.Speed < MinSpeed || v.Speed > MaxSpeed || !v.Format.Valid() {
			t.Fatalf("accepted out-of-bounds request %+v", v)
		}
		if _, err := voices.ParseVoice(v.Voice); err != nil {
			t.Fatalf("accepted bad voice %q", v.Voice)
		}
	})
}
