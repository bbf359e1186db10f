// Package queue is the wire contract between the API and the workers: task
// type names, versioned payloads, their constructors and parsers, and the
// queue priorities. Task type names are a persisted protocol: never rename
// them, add a new version instead.
package queue

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Task types.
const (
	// TypeSynthesize is the task of a synthesis job.
	TypeSynthesize = "tts:synthesize"
	// TypeWebhook delivers a finished job's terminal event to its
	// callback URL.
	TypeWebhook = "tts:webhook"
)

// QueueWebhooks holds webhook deliveries: after interactive jobs, before
// batch jobs.
const QueueWebhooks = "webhooks"

// WebhookMaxRetry bounds the delivery attempts of one webhook (with
// RetryDelay's backoff they span about a quarter of an hour).
const WebhookMaxRetry = 10

// PayloadVersion is the version of SynthesizePayload this code writes.
const PayloadVersion = 1

// MaxRetry is how many times a failed or lost attempt is retried: a job gets
// MaxRetry+1 attempts in all. A crashed worker's attempt counts as one.
const MaxRetry = 3

// Priorities maps the queue names to their priorities. With strict
// priority a worker always drains "interactive" before it takes a "batch"
// task. It returns a new map on each call.
func Priorities() map[string]int {
	return map[string]int{tts.QueueInteractive: 10, QueueWebhooks: 5, tts.QueueBatch: 1}
}

// queueOf returns the job's queue, interactive when it names none we know.
func queueOf(job *tts.Job) string {
	if job.Queue == tts.QueueBatch {
		return tts.QueueBatch
	}
	return tts.QueueInteractive
}

// SynthesizePayload is the body of a TypeSynthesize task. It carries only the
// job id: the database row is the source of truth.
type SynthesizePayload struct {
	Version int    `json:"v"`
	JobID   string `json:"job_id"`
}

// Timeout returns how long one attempt at synthesising text of n characters
// may take: two minutes plus 100 ms per character, at most one hour. A
// CPU-only Kokoro worker renders roughly 15 to 35 characters of text per
// second per job, so a 20,000-character text needs 10 to 25 minutes there.
func Timeout(n int) time.Duration {
	d := 2*time.Minute + time.Duration(n)*100*time.Millisecond
	if d > time.Hour {
		d = time.Hour
	}
	return d
}

// NewSynthesizeTask returns the task for job. Its TaskID is the job id, so
// enqueueing the same job twice is detected by asynq (ErrTaskIDConflict).
func NewSynthesizeTask(job *tts.Job) (*asynq.Task, error) {
	if job.ID == "" {
		return nil, fmt.Errorf("queue: job has no id")
	}
	b, err := json.Marshal(SynthesizePayload{Version: PayloadVersion, JobID: job.ID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeSynthesize, b,
		asynq.TaskID(job.ID),
		asynq.Queue(queueOf(job)),
		asynq.MaxRetry(MaxRetry),
		asynq.Timeout(Timeout(job.Characters())),
	), nil
}

// ParseSynthesize decodes a TypeSynthesize payload. A payload that cannot be
// decoded, or of an unknown version, is an EINVALID error: retrying it cannot
// help.
func ParseSynthesize(payload []byte) (SynthesizePayload, error) {
	var p SynthesizePayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return p, tts.Wrap(tts.EINVALID, err, "queue: malformed synthesize payload")
	}
	if p.Version != PayloadVersion {
		return p, tts.Errorf(tts.EINVALID, "queue: unsupported synthesize payload version %d", p.Version)
	}
	if p.JobID == "" {
		return p, tts.Errorf(tts.EINVALID, "queue: synthesize payload without job id")
	}
	return p, nil
}

// WebhookPayload is the body of a TypeWebhook task: a job's terminal event,
// or (BatchID set) a batch's completion.
type WebhookPayload struct {
	Version int    `json:"v"`
	JobID   string `json:"job_id,omitempty"`
	BatchID string `json:"batch_id,omitempty"`
}

// NewWebhookTask returns the delivery task of job's terminal event. Its
// task id is derived from the job, so a job is delivered once however often
// its end is reported.
func NewWebhookTask(jobID string) (*asynq.Task, error) {
	return webhookTask(WebhookPayload{Version: PayloadVersion, JobID: jobID}, "webhook:"+jobID)
}

// NewBatchWebhookTask returns the delivery task of a batch's completion,
// once per batch.
func NewBatchWebhookTask(batchID string) (*asynq.Task, error) {
	return webhookTask(WebhookPayload{Version: PayloadVersion, BatchID: batchID}, "webhook:batch:"+batchID)
}

func webhookTask(p WebhookPayload, taskID string) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeWebhook, b, asynq.TaskID(taskID), asynq.Queue(QueueWebhooks),
		asynq.MaxRetry(WebhookMaxRetry), asynq.Timeout(time.Minute), asynq.Retention(24*time.Hour)), nil
}

// ParseWebhook decodes a TypeWebhook payload (EINVALID when malformed).
func ParseWebhook(payload []byte) (WebhookPayload, error) {
	var p WebhookPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return p, tts.Wrap(tts.EINVALID, err, "queue: malformed webhook payload")
	}
	if p.Version != PayloadVersion || (p.JobID == "") == (p.BatchID == "") {
		return p, tts.Errorf(tts.EINVALID, "queue: webhook payload needs exactly one of job_id and batch_id (version %d)", p.Version)
	}
	return p, nil
}
