package tts

import (
	"context"
	"time"
)

// JobFilter selects jobs for JobStore.ListJobs.
type JobFilter struct {
	Status JobStatus // "" for any
	Before string    // cursor: only jobs with an id below this one (ids sort by creation time)
	Limit  int       // at most this many; the store caps it

	// The operator's filters (all optional).
	UserID string    // owner
	Voice  string    // exact voice (or blend) as stored
	Queue  string    // queue name
	Since  time.Time // created at or after
	Until  time.Time // created before
	Text   string    // substring of the text (case-insensitive for ASCII)
}

// JobStore persists jobs. Implementations make each state change conditional
// so that a stale or duplicate worker cannot overwrite a newer state and a
// terminal state never changes.
type JobStore interface {
	// CreateJob inserts a new queued job. When job.IdempotencyKey is already
	// used it returns the existing job and created=false (ECONFLICT if its
	// RequestHash differs).
	CreateJob(ctx context.Context, job *Job) (existing *Job, created bool, err error)

	// DeleteJob removes a job that never started: status queued and no
	// attempt (ECONFLICT otherwise, ENOTFOUND). The API uses it to take back
	// a job it could not enqueue.
	DeleteJob(ctx context.Context, id string) error

	// FindJob returns a job by id (ENOTFOUND).
	FindJob(ctx context.Context, id string) (*Job, error)

	// ListJobs returns jobs newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]*Job, error)

	// StartAttempt moves a queued or running job to running and increments
	// its attempt counter, returning the new attempt number. It returns
	// ECONFLICT when the job is terminal or cancel was requested, ENOTFOUND
	// when it does not exist.
	StartAttempt(ctx context.Context, id string, engine, device string) (attempt int, err error)

	// Heartbeat records that attempt `attempt` is still running (the
	// reconciler leaves a running job alone while its heartbeats are
	// fresh) and reports whether cancel was requested. ECONFLICT when the
	// job is no longer running that attempt.
	Heartbeat(ctx context.Context, id string, attempt int) (cancelRequested bool, err error)

	// CompleteJob marks the job succeeded with its audio, only if it is still
	// running attempt `attempt` (ECONFLICT otherwise).
	CompleteJob(ctx context.Context, id string, attempt int, audio Audio) error

	// FindCached returns a succeeded job whose audio has the cache key
	// (ENOTFOUND when there is none).
	FindCached(ctx context.Context, cacheKey string) (*Job, error)

	// FailJob marks a live job failed with a readable reason. attempt 0 means
	// any attempt (used by the reconciler); ECONFLICT if the job is terminal
	// or on another attempt.
	FailJob(ctx context.Context, id string, attempt int, reason string) error

	// RequestCancel flags a job for cancelation. A queued job becomes
	// canceled at once; a running job keeps running until its worker sees the
	// flag. It returns the job after the change; ECONFLICT if it is already
	// terminal, ENOTFOUND.
	RequestCancel(ctx context.Context, id string) (*Job, error)

	// CancelJob marks a live job canceled (the worker's answer to the flag).
	CancelJob(ctx context.Context, id string) error

	// RequeueJob returns a running job to queued (its worker was lost).
	RequeueJob(ctx context.Context, id string) error

	// ReleaseAttempt gives back an attempt that was interrupted by a
	// shutdown, not by the job: if the job is still running attempt
	// `attempt`, it goes back to queued with that attempt uncounted, so
	// deploys never push a job toward quarantine. ECONFLICT otherwise (a
	// newer attempt owns it, or it ended), ENOTFOUND.
	ReleaseAttempt(ctx context.Context, id string, attempt int) error

	// StaleJobs returns live jobs (queued or running) last updated before t,
	// oldest first, for the reconciler.
	StaleJobs(ctx context.Context, before time.Time, limit int) ([]*Job, error)

	// CountByStatus returns how many jobs are in each state.
	CountByStatus(ctx context.Context) (map[JobStatus]int, error)

	// Ping checks the database is reachable (EUNAVAILABLE).
	Ping(ctx context.Context) error
}

// Enqueuer hands jobs to the queue. Enqueueing an id that is already queued
// is not an error: it is how the reconciler stays idempotent.
type Enqueuer interface {
	// Enqueue queues the job's synthesis task (EUNAVAILABLE when the queue
	// is down).
	Enqueue(ctx context.Context, job *Job) error
}

// SampleRate is the sample rate of the PCM engines return: Kokoro's native
// 24 kHz.
const SampleRate = 24000

// PCM is mono audio as float32 samples in [-1, 1].
type PCM struct {
	SampleRate int
	Samples    []float32
}

// Duration returns the length of the audio.
func (p PCM) Duration() time.Duration {
	if p.SampleRate <= 0 {
		return 0
	}
	return time.Duration(float64(len(p.Samples)) / float64(p.SampleRate) * float64(time.Second))
}

// SynthesisRequest is what a worker asks an engine for.
type SynthesisRequest struct {
	Text  string
	Voice string // an id or a blend, already validated against the engine's voices
	Speed float64
	// Progress, when set, is called after each chunk with the chunks done
	// and the total.
	Progress func(done, total int)
}

// EngineInfo describes a running engine.
type EngineInfo struct {
	Name    string `json:"name"`             // "espeak-ng", "kokoro", "tone"
	Device  string `json:"device"`           // "cpu" or "cuda"
	Model   string `json:"model,omitempty"`  // model file or version
	Detail  string `json:"detail,omitempty"` // e.g. why a fallback happened
	Version string `json:"version,omitempty"`
}

// Synthesizer turns text into 24 kHz mono PCM. Implementations split long
// text into chunks themselves, honour ctx between chunks and are safe for
// concurrent use.
type Synthesizer interface {
	// Synthesize returns the audio for req. Errors: EINVALID when the
	// request can never succeed (it is not retried), ECANCELED when ctx was
	// canceled, anything else is treated as transient.
	Synthesize(ctx context.Context, req SynthesisRequest) (PCM, error)
	// Voices lists the voices the engine offers.
	Voices() []Voice
	// Info describes the engine.
	Info() EngineInfo
	// Close releases the engine's resources.
	Close() error
}

// JobStats summarises the jobs of a recent window, for the operator.
type JobStats struct {
	Since      time.Time
	Submitted  int // created in the window
	Succeeded  int // finished in the window, by outcome
	Failed     int
	Canceled   int
	WaitP50    time.Duration // queue wait (created → first start) of jobs started in the window
	WaitP95    time.Duration
	SynthP50   time.Duration // first start → finish of jobs that succeeded in the window
	SynthP95   time.Duration
	SampleSize int // jobs the percentiles were computed over (capped)
}
