package queue

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Client enqueues jobs through asynq. It implements tts.Enqueuer.
type Client struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	shared    bool // built on a caller's Redis client, which the caller closes
}

// NewClient returns a Client on the given Redis connection options.
func NewClient(opt asynq.RedisConnOpt) *Client {
	return &Client{client: asynq.NewClient(opt), inspector: asynq.NewInspector(opt)}
}

// NewClientFromRedis returns a Client on an existing Redis client (so that
// its settings, such as honouring context deadlines, apply to the enqueue).
// Close leaves rdb open.
func NewClientFromRedis(rdb redis.UniversalClient) *Client {
	return &Client{client: asynq.NewClientFromRedisClient(rdb), inspector: asynq.NewInspectorFromRedisClient(rdb), shared: true}
}

// Enqueue queues job's synthesis task. A task that already exists for the job
// is not an error. A Redis failure is EUNAVAILABLE.
func (c *Client) Enqueue(ctx context.Context, job *tts.Job) error {
	t, err := NewSynthesizeTask(job)
	if err != nil {
		return tts.Wrap(tts.EINTERNAL, err, "could not build queue task")
	}
	_, err = c.client.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return tts.Wrap(tts.EUNAVAILABLE, err, "the job queue is unavailable")
	}
	return nil
}

// EnqueueWebhook queues the delivery of job's terminal event. A delivery
// already queued for the job is not an error.
func (c *Client) EnqueueWebhook(ctx context.Context, jobID string) error {
	t, err := NewWebhookTask(jobID)
	if err != nil {
		return tts.Wrap(tts.EINTERNAL, err, "could not build webhook task")
	}
	if _, err = c.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return tts.Wrap(tts.EUNAVAILABLE, err, "the job queue is unavailable")
	}
	return nil
}

// EnqueueBatchWebhook queues the delivery of a batch's completion; once per
// batch.
func (c *Client) EnqueueBatchWebhook(ctx context.Context, batchID string) error {
	t, err := NewBatchWebhookTask(batchID)
	if err != nil {
		return tts.Wrap(tts.EINTERNAL, err, "could not build webhook task")
	}
	if _, err = c.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return tts.Wrap(tts.EUNAVAILABLE, err, "the job queue is unavailable")
	}
	return nil
}

// TaskState returns the state of the job's task in asynq ("pending",
// "active", "scheduled", "retry", "archived", "completed") or "" when asynq
// has no task for it.
func (c *Client) TaskState(ctx context.Context, job *tts.Job) (string, string, error) {
	info, err := c.inspector.GetTaskInfo(queueOf(job), job.ID)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return "", "", nil
	} else if err != nil {
		return "", "", tts.Wrap(tts.EUNAVAILABLE, err, "the job queue is unavailable")
	}
	return info.State.String(), info.LastErr, nil
}

// DeleteTask removes the job's task if it is not running. Missing tasks are
// not an error.
func (c *Client) DeleteTask(ctx context.Context, job *tts.Job) error {
	err := c.inspector.DeleteTask(queueOf(job), job.ID)
	if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	return tts.Wrap(tts.EUNAVAILABLE, err, "the job queue is unavailable")
}

// CancelProcessing asks the worker running the job to cancel its context.
// It is best effort: the database flag is what the worker honours.
func (c *Client) CancelProcessing(ctx context.Context, job *tts.Job) error {
	if err := c.inspector.CancelProcessing(job.ID); err != nil {
		return tts.Wrap(tts.EUNAVAILABLE, err, "the job queue is unavailable")
	}
	return nil
}

// Inspector returns the underlying asynq inspector.
func (c *Client) Inspector() *asynq.Inspector { return c.inspector }

// Close closes the connections (not a shared Redis client's).
func (c *Client) Close() error {
	if c.shared {
		return nil
	}
	err := c.client.Close()
	if err2 := c.inspector.Close(); err == nil {
		err = err2
	}
	return err
}
