// Package tts holds the domain of the text-to-speech service: jobs, their
// lifecycle, requests and their validation, voices, audio formats, the error
// type and the interfaces between the parts. It imports only the standard
// library; every adapter (SQL store, HTTP API, queue, engines) points inward
// to it.
package tts

import (
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// JobStatus is the state of a job. The values are stored in the database and
// shown to clients: never rename them.
type JobStatus string

// The job states. Queued and Running are live; the others are terminal and
// never change once reached.
const (
	StatusQueued    JobStatus = "queued"
	StatusRunning   JobStatus = "running"
	StatusSucceeded JobStatus = "succeeded"
	StatusFailed    JobStatus = "failed"
	StatusCanceled  JobStatus = "canceled"
)

// Terminal reports whether s is a final state.
func (s JobStatus) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// Valid reports whether s is one of the known states.
func (s JobStatus) Valid() bool {
	return s == StatusQueued || s == StatusRunning || s.Terminal()
}

// Queue names. Interactive jobs always go before batch jobs.
const (
	QueueInteractive = "interactive"
	QueueBatch       = "batch"
)

// Format is an output audio format. The values are stored with jobs and
// sent by clients: never rename them.
type Format string

// The supported output formats. All are 24 kHz mono; the package that
// encodes them (pkg/audio) documents the codec settings.
const (
	// FormatMP3 is MPEG-2 Layer III, the default: plays everywhere.
	FormatMP3 Format = "mp3"
	// FormatWAV is 16-bit PCM in a RIFF/WAVE file with exact sizes.
	FormatWAV Format = "wav"
	// FormatOpus is Opus in Ogg (RFC 7845): the smallest for speech, and
	// gapless (its pre-skip and end trimming give the exact length).
	FormatOpus Format = "opus"
	// FormatAAC is AAC-LC in ADTS frames. ADTS streams without seeking but
	// stores no duration and cannot signal the encoder delay: decoders
	// play about 43 ms of priming silence first.
	FormatAAC Format = "aac"
	// FormatFLAC is lossless FLAC with the total sample count and MD5 set.
	FormatFLAC Format = "flac"
	// FormatPCM is raw signed 16-bit little-endian samples at 24 kHz, mono,
	// with no header: 48,000 bytes a second.
	FormatPCM Format = "pcm"
)

// Formats lists the accepted formats, default first. It returns a new slice
// on each call.
func Formats() []Format {
	return []Format{FormatMP3, FormatWAV, FormatOpus, FormatAAC, FormatFLAC, FormatPCM}
}

// ContentType returns the MIME type of the format. Opus carries the codecs
// parameter (RFC 5334) so that a client can tell it from Ogg Vorbis before
// downloading. PCM is application/octet-stream: audio/L16 (RFC 2586) is
// big-endian, so it would mislabel these little-endian samples.
func (f Format) ContentType() string {
	switch f {
	case FormatMP3:
		return "audio/mpeg"
	case FormatWAV:
		return "audio/wav"
	case FormatOpus:
		return "audio/ogg; codecs=opus"
	case FormatAAC:
		return "audio/aac"
	case FormatFLAC:
		return "audio/flac"
	}
	return "application/octet-stream"
}

// Extension returns the file extension of the format, without the dot.
// Every format's name is its extension; for Ogg Opus that is ".opus", the
// one IANA registers for it (".ogg" suggests Vorbis).
func (f Format) Extension() string { return string(f) }

// Valid reports whether f is a supported format.
func (f Format) Valid() bool {
	for _, g := range Formats() {
		if f == g {
			return true
		}
	}
	return false
}

// EncodeOptions are a job's optional encoding settings; zero values mean
// the defaults (24 kHz, the deployment's bitrate for the format).
type EncodeOptions struct {
	BitrateKbps int // mp3, opus and aac only
	SampleRate  int // Hz
}

// sampleRates are the output sample rates a request may ask for.
var sampleRates = []int{8000, 16000, 22050, 24000, 32000, 44100, 48000}

// mpeg2Bitrates and mpeg1Bitrates are the bitrates MP3 can carry below and
// from 32 kHz.
var (
	mpeg2Bitrates = []int{8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}
	mpeg1Bitrates = []int{32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
)

// Check validates o for format f. Errors are EINVALID and name the field
// and the allowed values.
func (o EncodeOptions) Check(f Format) error {
	rate := o.SampleRate
	if rate != 0 {
		allowed := sampleRates
		if f == FormatOpus {
			allowed = []int{8000, 16000, 24000, 48000} // what libopus takes
		}
		if !slices.Contains(allowed, rate) {
			return Errorf(EINVALID, "sample_rate: must be one of %v for %s", allowed, f)
		}
	} else {
		rate = SampleRate
	}
	if o.BitrateKbps == 0 {
		return nil
	}
	switch f {
	case FormatMP3:
		allowed := mpeg2Bitrates
		if rate >= 32000 {
			allowed = mpeg1Bitrates
		}
		if !slices.Contains(allowed, o.BitrateKbps) {
			return Errorf(EINVALID, "bitrate_kbps: must be one of %v for mp3 at %d Hz", allowed, rate)
		}
	case FormatOpus:
		if o.BitrateKbps < 6 || o.BitrateKbps > 256 {
			return Errorf(EINVALID, "bitrate_kbps: must be from 6 to 256 for opus")
		}
	case FormatAAC:
		// AAC-LC carries at most 6144 bits in a 1024-sample frame.
		if max := 6 * rate / 1000; o.BitrateKbps < 8 || o.BitrateKbps > max {
			return Errorf(EINVALID, "bitrate_kbps: must be from 8 to %d for aac at %d Hz", max, rate)
		}
	default:
		return Errorf(EINVALID, "bitrate_kbps: only mp3, opus and aac take a bitrate (%s is lossless or raw)", f)
	}
	return nil
}

// Audio describes a job's stored audio.
type Audio struct {
	Key             string  // storage key
	ContentType     string  // MIME type
	Bytes           int64   // size of the stored object
	DurationSeconds float64 // length of the audio
	// CacheKey identifies everything that determined the audio (engine,
	// model, voice, speed, format, normalised text); "" when not cached.
	CacheKey string
	// CacheHit is true when the audio was reused, not synthesised.
	CacheHit bool
}

// Job is one synthesis request and its lifecycle. The database row is the
// source of truth; queue tasks carry only the id.
type Job struct {
	ID              string
	Status          JobStatus
	Text            string
	Voice           string
	Speed           float64
	Format          Format
	Queue           string
	Attempts        int // attempts started so far
	MaxAttempts     int // attempts allowed before the job fails
	Error           string
	CancelRequested bool
	IdempotencyKey  string
	RequestHash     string // hash of the request, to detect a reused idempotency key
	Audio           *Audio // set once succeeded
	Options         EncodeOptions
	BatchID         string // the batch the job belongs to, if any
	UserID          string // the account that submitted it, "" when the API ran open
	CallbackURL     string // where the terminal event is POSTed (webhook), if any
	Engine          string // engine that produced the audio, e.g. "espeak-ng"
	Device          string // device it ran on, e.g. "cpu"
	CreatedAt       time.Time
	StartedAt       *time.Time // first start of an attempt
	FinishedAt      *time.Time
	UpdatedAt       time.Time
}

// Characters returns the length of the job's text in characters.
func (j *Job) Characters() int { return utf8.RuneCountInString(j.Text) }

// Defaults applied to a request's omitted fields.
const (
	DefaultVoice  = "af_heart"
	DefaultSpeed  = 1.0
	DefaultFormat = FormatMP3
	MinSpeed      = 0.5
	MaxSpeed      = 2.0
	// DefaultMaxTextChars is the default bound on a request's text.
	DefaultMaxTextChars = 20000
)

// Request is a synthesis request as a client sends it. Zero values mean
// "use the default".
type Request struct {
	Text   string
	Voice  string
	Speed  *float64
	Format string
	Queue  string
	// CallbackURL receives the job's terminal event (checked by the
	// service, which knows whether webhooks are enabled).
	CallbackURL string
	BitrateKbps *int
	SampleRate  *int
}

// Limits bounds what a request may ask for.
type Limits struct {
	MaxTextChars int
	Voices       VoiceSet
}

// Validated is a request after defaults and validation.
type Validated struct {
	Text        string
	Voice       string // as given (trimmed), a single id or a blend
	Speed       float64
	Format      Format
	Queue       string
	CallbackURL string
	Options     EncodeOptions
}

// Validate applies defaults and checks every field. It returns an EINVALID
// error whose message names the field and the allowed values, or ETOOLARGE
// when the text is longer than allowed.
func (r Request) Validate(l Limits) (Validated, error) {
	v := Validated{Text: r.Text, Voice: strings.TrimSpace(r.Voice), Speed: DefaultSpeed, Format: Format(strings.ToLower(strings.TrimSpace(r.Format))),
		Queue: r.Queue, CallbackURL: strings.TrimSpace(r.CallbackURL)}
	if !utf8.ValidString(v.Text) {
		return v, Errorf(EINVALID, "text: must be valid UTF-8")
	}
	if strings.IndexFunc(v.Text, func(r rune) bool { return !unicode.IsSpace(r) && unicode.IsGraphic(r) }) < 0 {
		return v, Errorf(EINVALID, "text: must contain at least one visible character")
	}
	max := l.MaxTextChars
	if max <= 0 {
		max = DefaultMaxTextChars
	}
	if n := utf8.RuneCountInString(v.Text); n > max {
		return v, Errorf(ETOOLARGE, "text: %d characters is more than the maximum of %d", n, max)
	}
	if v.Voice == "" {
		v.Voice = DefaultVoice
	}
	if l.Voices != nil {
		if _, err := l.Voices.ParseVoice(v.Voice); err != nil {
			return v, err
		}
	}
	if r.Speed != nil {
		s := *r.Speed
		if math.IsNaN(s) || s < MinSpeed || s > MaxSpeed {
			return v, Errorf(EINVALID, "speed: must be a number from %.1f to %.1f", MinSpeed, MaxSpeed)
		}
		v.Speed = s
	}
	if v.Format == "" {
		v.Format = DefaultFormat
	}
	if !v.Format.Valid() {
		return v, Errorf(EINVALID, "format: must be one of %s", formatList())
	}
	if r.BitrateKbps != nil {
		if *r.BitrateKbps <= 0 {
			return v, Errorf(EINVALID, "bitrate_kbps: must be a positive number")
		}
		v.Options.BitrateKbps = *r.BitrateKbps
	}
	if r.SampleRate != nil {
		if *r.SampleRate <= 0 {
			return v, Errorf(EINVALID, "sample_rate: must be a positive number")
		}
		v.Options.SampleRate = *r.SampleRate
	}
	if err := v.Options.Check(v.Format); err != nil {
		return v, err
	}
	switch v.Queue {
	case "":
		v.Queue = QueueInteractive
	case QueueInteractive, QueueBatch:
	default:
		return v, Errorf(EINVALID, "queue: must be %q or %q", QueueInteractive, QueueBatch)
	}
	return v, nil
}

func formatList() string {
	fs := Formats()
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = `"` + string(f) + `"`
	}
	return strings.Join(s, ", ")
}
