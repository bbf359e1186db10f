package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/webhook"
	"github.com/kokorotts/kokoro-tts/queue"
)

// WebhookEnqueuer queues webhook deliveries.
type WebhookEnqueuer interface {
	EnqueueWebhook(ctx context.Context, jobID string) error
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
	p, err := queue.ParseSynthesize(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	job, err := h.Store.FindJob(ctx, p.JobID)
	if tts.ErrorCode(err) == tts.ENOTFOUND {
		return fmt.Errorf("job %s not found: %w", p.JobID, asynq.SkipRetry)
	} else if err != nil {
		return err
	}
	if job.CallbackURL == "" || !job.Status.Terminal() {
		return nil
	}
	e := events.FromJob(job)
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	log := h.Logger.With("job_id", job.ID, "event", e.Type)
	if err := h.Sender.Deliver(ctx, job.CallbackURL, job.ID+":"+e.Type, body); err != nil {
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
