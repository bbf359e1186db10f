package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/webhook"
	"github.com/kokorotts/kokoro-tts/queue"
)

// WebhookEnqueuer queues webhook deliveries.
type WebhookEnqueuer interface {
	EnqueueWebhook(ctx context.Context, jobID string) error
	EnqueueBatchWebhook(ctx context.Context, batchID string) error
}

// notifyBatch queues the completion webhook of the job's batch once every
// item has ended (the task id makes it once per batch).
func notifyBatch(ctx context.Context, store tts.JobStore, hooks WebhookEnqueuer, log *slog.Logger, j *tts.Job) {
	bs, ok := store.(tts.BatchStore)
	if hooks == nil || j.BatchID == "" || !j.Status.Terminal() || !ok {
		return
	}
	b, err := bs.FindBatch(ctx, j.BatchID)
	if err != nil || b.CallbackURL == "" || !b.Done() {
		return
	}
	if err := hooks.EnqueueBatchWebhook(ctx, b.ID); err != nil {
		log.Error("could not queue the webhook of a finished batch", "batch_id", b.ID, "err", err)
	}
}

// batchEvent is the body of a batch completion webhook.
type batchEvent struct {
	Type    string            `json:"type"` // "batch.completed"
	BatchID string            `json:"batch_id"`
	Status  string            `json:"status"` // completed or canceled
	Items   int               `json:"items"`
	Counts  map[string]int    `json:"counts"`
	Links   map[string]string `json:"links"`
	Time    time.Time         `json:"time"`
}

// Deliverer posts one signed event.
type Deliverer interface {
	Deliver(ctx context.Context, url, eventID string, body []byte) error
}

// WebhookHandler processes TypeWebhook tasks: it posts the job's terminal
// event to its callback URL. Failures are retried by asynq with backoff;
// refused addresses and 410 Gone are not.
type WebhookHandler struct {
	Store  tts.JobStore
	Sender Deliverer
	Logger *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *WebhookHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseWebhook(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	url, eventID, body, err := h.event(ctx, p)
	if err != nil || url == "" {
		return err
	}
	log := h.Logger.With("event_id", eventID)
	if err := h.Sender.Deliver(ctx, url, eventID, body); err != nil {
		if errors.Is(err, webhook.ErrPermanent) {
			log.Warn("webhook not delivered; giving up", "err", err)
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		retried, _ := asynq.GetRetryCount(ctx)
		log.Warn("webhook delivery failed; will retry", "err", err, "retried", retried)
		return err
	}
	log.Info("webhook delivered")
	return nil
}

// event builds the delivery: the job's terminal event, or the batch's
// completion. An empty url means there is nothing to deliver.
func (h *WebhookHandler) event(ctx context.Context, p queue.WebhookPayload) (url, eventID string, body []byte, err error) {
	if p.BatchID != "" {
		bs, ok := h.Store.(tts.BatchStore)
		if !ok {
			return "", "", nil, fmt.Errorf("no batch store: %w", asynq.SkipRetry)
		}
		b, err := bs.FindBatch(ctx, p.BatchID)
		if tts.ErrorCode(err) == tts.ENOTFOUND {
			return "", "", nil, fmt.Errorf("batch %s not found: %w", p.BatchID, asynq.SkipRetry)
		} else if err != nil {
			return "", "", nil, err
		}
		if b.CallbackURL == "" || !b.Done() {
			return "", "", nil, nil
		}
		counts := map[string]int{}
		for s, n := range b.Counts {
			counts[string(s)] = n
		}
		e := batchEvent{Type: "batch.completed", BatchID: b.ID, Status: string(b.State()), Items: b.Items, Counts: counts,
			Links: map[string]string{"self": "/api/batches/" + b.ID, "archive": "/api/batches/" + b.ID + "/archive"},
			Time:  b.UpdatedAt.UTC()}
		body, err = json.Marshal(e)
		return b.CallbackURL, "batch:" + b.ID + ":completed", body, err
	}
	job, err := h.Store.FindJob(ctx, p.JobID)
	if tts.ErrorCode(err) == tts.ENOTFOUND {
		return "", "", nil, fmt.Errorf("job %s not found: %w", p.JobID, asynq.SkipRetry)
	} else if err != nil {
		return "", "", nil, err
	}
	if job.CallbackURL == "" || !job.Status.Terminal() {
		return "", "", nil, nil
	}
	e := events.FromJob(job)
	body, err = json.Marshal(e)
	return job.CallbackURL, job.ID + ":" + e.Type, body, err
}
