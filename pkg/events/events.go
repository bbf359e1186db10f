// Package events carries job events (queued, running with progress,
// succeeded, failed, canceled) from whoever changes a job to whoever
// watches it, through Redis: one capped stream per job, so any API replica
// can serve any subscriber, and a reconnecting client resumes after the
// last event it saw (the stream entry id is the SSE event id).
package events

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Event types. They are part of the public API (SSE event names).
const (
	Queued    = "queued"
	Running   = "running"
	Succeeded = "succeeded"
	Failed    = "failed"
	Canceled  = "canceled"
	// Retrying: an attempt failed and the job will be tried again (with
	// the attempt's number and error).
	Retrying = "retrying"
)

// Terminal reports whether an event of type t ends a job's stream.
func Terminal(t string) bool { return t == Succeeded || t == Failed || t == Canceled }

// Audio is the audio link of a succeeded event.
type Audio struct {
	URL             string  `json:"url"`
	ContentType     string  `json:"content_type"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// Event is one change of a job.
type Event struct {
	ID       string    `json:"-"` // stream entry id; empty for a synthesised event
	Type     string    `json:"type"`
	JobID    string    `json:"job_id"`
	Progress *float64  `json:"progress,omitempty"` // 0..1 by chunk, on running events
	Audio    *Audio    `json:"audio,omitempty"`
	Error    string    `json:"error,omitempty"`
	Attempt  int       `json:"attempt,omitempty"` // on running and retrying events
	Time     time.Time `json:"time"`
}

// FromJob returns the event that describes job's current state (used when a
// stream holds nothing newer, e.g. after it expired).
func FromJob(j *tts.Job) Event {
	e := Event{Type: string(j.Status), JobID: j.ID, Error: j.Error, Time: j.UpdatedAt.UTC()}
	if j.Status == tts.StatusSucceeded && j.Audio != nil {
		e.Audio = &Audio{URL: "/api/jobs/" + j.ID + "/audio", ContentType: j.Audio.ContentType, Bytes: j.Audio.Bytes,
			DurationSeconds: j.Audio.DurationSeconds}
	}
	return e
}

// Progress returns a running event at done/total chunks.
func Progress(jobID string, done, total int) Event {
	p := 0.0
	if total > 0 {
		p = float64(done) / float64(total)
	}
	return Event{Type: Running, JobID: jobID, Progress: &p, Time: time.Now().UTC()}
}

// Retention bounds a job's stream: its newest MaxLen events, for TTL after
// the last one.
const (
	MaxLen = 1000
	TTL    = 24 * time.Hour
)

// Redis publishes and reads events in Redis streams.
type Redis struct {
	rdb redis.UniversalClient
}

// NewRedis returns the Redis event bus.
func NewRedis(rdb redis.UniversalClient) *Redis { return &Redis{rdb: rdb} }

func key(jobID string) string { return "kokoro-tts:events:" + jobID }

// Publish appends e to its job's stream. Errors are EUNAVAILABLE.
func (r *Redis) Publish(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	k := key(e.JobID)
	pipe := r.rdb.TxPipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, MaxLen: MaxLen, Approx: true, Values: map[string]any{"e": string(b)}})
	pipe.Expire(ctx, k, TTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return tts.Wrap(tts.EUNAVAILABLE, err, "the event bus is unavailable")
	}
	return nil
}

// Read returns the job's events after the entry id `after` ("" or "0" for
// all), waiting up to block for the first one when there are none yet. It
// returns no events and no error when block passes.
func (r *Redis) Read(ctx context.Context, jobID, after string, block time.Duration) ([]Event, error) {
	if after == "" {
		after = "0"
	}
	res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key(jobID), after}, Count: 100, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	} else if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, tts.Wrap(tts.EUNAVAILABLE, err, "the event bus is unavailable")
	}
	var out []Event
	for _, s := range res {
		for _, m := range s.Messages {
			raw, _ := m.Values["e"].(string)
			var e Event
			if json.Unmarshal([]byte(raw), &e) != nil {
				continue
			}
			e.ID = m.ID
			out = append(out, e)
		}
	}
	return out, nil
}
