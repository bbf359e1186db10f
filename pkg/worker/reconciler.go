package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/storage"
)

// TaskQueue is what the reconciler needs from the queue.
type TaskQueue interface {
	tts.Enqueuer
	// TaskState returns the state of job's task ("" when none exists) and
	// its last error.
	TaskState(ctx context.Context, job *tts.Job) (state, lastErr string, err error)
	// DeleteTask removes job's task unless it is running.
	DeleteTask(ctx context.Context, job *tts.Job) error
}

// Reconciler repairs the gap between the database and the queue: enqueue is
// not transactional with the insert, Redis can lose data (restart without
// persistence, eviction) and asynq archives a task whose worker kept dying.
// For every live job not updated for a while it checks the task: a missing
// task is enqueued again, an archived one fails the job with its reason
// (unless its last delivery could not even start, or could not record its
// success, because the database was unavailable: that job is queued again,
// within its attempt budget).
type Reconciler struct {
	Store      tts.JobStore
	Queue      TaskQueue
	Logger     *slog.Logger
	Events     EventPublisher  // optional: terminal events of the jobs it ends
	Webhooks   WebhookEnqueuer // optional: their webhooks
	Objects    storage.Store   // optional: removes audio stored for the jobs it ends (see discardAudio)
	Interval   time.Duration   // between passes; default 30 s
	StaleAfter time.Duration   // a live job untouched this long is checked; default 1 min
}

// Run runs passes until ctx is done.
func (r *Reconciler) Run(ctx context.Context) {
	every := r.Interval
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.Logger.Warn("reconciler pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass checks the stale live jobs once and returns how many it repaired.
// A running job stays fresh while its worker sends heartbeats, so
// StaleAfter must exceed the handler's heartbeat interval (1 s) with room.
func (r *Reconciler) Pass(ctx context.Context) (int, error) {
	stale := r.StaleAfter
	if stale <= 0 {
		stale = time.Minute
	}
	return r.pass(ctx, time.Now().Add(-stale))
}

// PassAll checks every live job however recently it changed: for a start
// when no worker of this queue can be running yet (embedded mode, whose
// in-memory queue starts empty).
func (r *Reconciler) PassAll(ctx context.Context) (int, error) {
	return r.pass(ctx, time.Now().Add(time.Second))
}

func (r *Reconciler) pass(ctx context.Context, before time.Time) (int, error) {
	jobs, err := r.Store.StaleJobs(ctx, before, 5000)
	if err != nil {
		return 0, err
	}
	repaired := 0
	for _, job := range jobs {
		ok, err := r.repair(ctx, job)
		if err != nil {
			if tts.ErrorCode(err) == tts.EUNAVAILABLE {
				return repaired, err // Redis or the database is down: try the next pass
			}
			r.Logger.Error("reconciler could not repair a job; going on with the others", "job_id", job.ID, "err", err)
			continue
		}
		if ok {
			repaired++
		}
	}
	return repaired, nil
}

// repair checks one stale live job against its task and fixes what it can.
func (r *Reconciler) repair(ctx context.Context, job *tts.Job) (bool, error) {
	state, lastErr, err := r.Queue.TaskState(ctx, job)
	if err != nil {
		return false, err
	}
	log := r.Logger.With("job_id", job.ID, "status", job.Status, "task_state", state)
	if state != "" && state != "archived" && state != "completed" {
		return false, nil // the task is there and will run
	}
	if job.CancelRequested {
		// The user asked to cancel and no attempt will run again.
		if err := r.Store.CancelJob(ctx, job.ID); err != nil && tts.ErrorCode(err) != tts.ECONFLICT {
			return false, err
		} else if err == nil {
			discardAudio(ctx, r.Objects, log, job)
			r.publish(ctx, job.ID)
		}
		log.Warn("canceled a live job whose task is gone and whose cancel was requested")
		return true, nil
	}
	switch state {
	case "":
		if err := r.Queue.Enqueue(ctx, job); err != nil {
			return false, err
		}
		log.Warn("re-enqueued a live job whose task was missing")
	case "archived":
		if strings.HasPrefix(lastErr, unrecordedPrefix) && job.Status == tts.StatusRunning {
			// The last attempt stored its audio but the database was
			// down for its whole completion window: give that attempt
			// back (it was not the job's fault) and queue the job again;
			// the next attempt makes the audio anew into the same key.
			if err := r.Store.ReleaseAttempt(ctx, job.ID, job.Attempts); err != nil {
				if tts.ErrorCode(err) == tts.ECONFLICT {
					return false, nil // it moved on meanwhile: the next pass sees where
				}
				return false, err
			}
			if err := r.requeue(ctx, job); err != nil {
				return false, err
			}
			log.Warn("re-enqueued a job whose success could not be recorded (database unavailable); its attempt was given back",
				"attempts", job.Attempts, "last_error", lastErr)
			return true, nil
		}
		if strings.HasPrefix(lastErr, notStartedPrefix) && (job.MaxAttempts <= 0 || job.Attempts < job.MaxAttempts) {
			// The retries were spent by earlier attempts, and the last
			// delivery found the database unavailable: the job has
			// attempts left, so it waits for the database instead of
			// failing because of it.
			if err := r.requeue(ctx, job); err != nil {
				return false, err
			}
			log.Warn("re-enqueued a job whose last delivery could not start (database unavailable)",
				"attempts", job.Attempts, "max_attempts", job.MaxAttempts, "last_error", lastErr)
			return true, nil
		}
		reason := fmt.Sprintf("gave up after %d attempts (see the worker log)", job.Attempts)
		if strings.Contains(lastErr, "lease expired") {
			reason = fmt.Sprintf("gave up after %d attempts: the worker running it stopped (crashed or was killed) each time", job.Attempts)
		}
		if err := r.Store.FailJob(ctx, job.ID, 0, reason); err != nil && tts.ErrorCode(err) != tts.ECONFLICT {
			return false, err
		} else if err == nil {
			discardAudio(ctx, r.Objects, log, job)
			r.publish(ctx, job.ID)
		}
		log.Warn("failed a live job whose task was archived", "reason", reason, "last_error", lastErr)
	case "completed":
		// The handler finished without recording a terminal state (it
		// should not happen): fail rather than hang forever.
		if err := r.Store.FailJob(ctx, job.ID, 0, "the job's task ended without a result"); err != nil && tts.ErrorCode(err) != tts.ECONFLICT {
			return false, err
		} else if err == nil {
			discardAudio(ctx, r.Objects, log, job)
			r.publish(ctx, job.ID)
		}
		log.Error("failed a live job whose task completed without a result")
	}
	return true, nil
}

// requeue replaces the job's archived task with a new one (same task id,
// a fresh asynq retry count; the job's own attempt budget still applies).
func (r *Reconciler) requeue(ctx context.Context, job *tts.Job) error {
	if err := r.Queue.DeleteTask(ctx, job); err != nil {
		return err
	}
	return r.Queue.Enqueue(ctx, job)
}

// publish sends the terminal event of a job the reconciler ended.
func (r *Reconciler) publish(ctx context.Context, id string) {
	if r.Events == nil {
		return
	}
	j, err := r.Store.FindJob(ctx, id)
	if err != nil {
		return
	}
	if err := r.Events.Publish(ctx, events.FromJob(j)); err != nil {
		r.Logger.Warn("publishing a job event failed", "job_id", id, "err", err)
	}
	if r.Webhooks != nil && j.CallbackURL != "" {
		if err := r.Webhooks.EnqueueWebhook(ctx, j.ID); err != nil {
			r.Logger.Error("could not queue the webhook of a finished job", "job_id", id, "err", err)
		}
	}
	notifyBatch(ctx, r.Store, r.Webhooks, r.Logger, j)
}
