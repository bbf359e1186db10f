package httpapi

import (
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// jobView is a job as the API shows it.
type jobView struct {
	ID              string     `json:"id"`
	Status          string     `json:"status"`
	Text            string     `json:"text"`
	Voice           string     `json:"voice"`
	Speed           float64    `json:"speed"`
	Format          string     `json:"format"`
	Queue           string     `json:"queue"`
	BitrateKbps     int        `json:"bitrate_kbps,omitempty"`
	SampleRate      int        `json:"sample_rate,omitempty"`
	Characters      int        `json:"characters"`
	Attempts        int        `json:"attempts"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	Error           string     `json:"error,omitempty"`
	Audio           *audioView `json:"audio,omitempty"`
	CacheHit        bool       `json:"cache_hit"`
	CallbackURL     string     `json:"callback_url,omitempty"`
	Engine          string     `json:"engine,omitempty"`
	Device          string     `json:"device,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	Links           links      `json:"links"`
}

type audioView struct {
	URL             string  `json:"url"`
	ContentType     string  `json:"content_type"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
}

type links struct {
	Self  string `json:"self"`
	Audio string `json:"audio"`
}

type listView struct {
	Jobs       []jobView `json:"jobs"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

func jobPath(id string) string { return "/api/jobs/" + id }

func viewOf(j *tts.Job) jobView {
	v := jobView{
		ID: j.ID, Status: string(j.Status), Text: j.Text, Voice: j.Voice, Speed: j.Speed, Format: string(j.Format), Queue: j.Queue,
		Characters: j.Characters(), Attempts: j.Attempts, CancelRequested: j.CancelRequested && !j.Status.Terminal(),
		BitrateKbps: j.Options.BitrateKbps, SampleRate: j.Options.SampleRate,
		Error: j.Error, CallbackURL: j.CallbackURL, Engine: j.Engine, Device: j.Device, CreatedAt: j.CreatedAt.UTC(),
		StartedAt: utc(j.StartedAt), FinishedAt: utc(j.FinishedAt),
		Links: links{Self: jobPath(j.ID), Audio: jobPath(j.ID) + "/audio"},
	}
	if j.Status == tts.StatusSucceeded && j.Audio != nil {
		v.Audio = &audioView{URL: v.Links.Audio, ContentType: j.Audio.ContentType, Bytes: j.Audio.Bytes, DurationSeconds: j.Audio.DurationSeconds}
		v.CacheHit = j.Audio.CacheHit
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
