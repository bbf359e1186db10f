package jobs

import (
	"context"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// DefaultWaitPoll is how often Wait reads the job when poll is not positive.
const DefaultWaitPoll = 100 * time.Millisecond

// Wait returns job id once it is terminal (succeeded, failed or canceled),
// reading it from the store every poll. It is for callers that answer
// synchronously, such as the OpenAI-compatible speech endpoint.
//
// When ctx ends first, Wait returns ctx.Err() itself (context.Canceled or
// context.DeadlineExceeded, so that the caller can tell a client that left
// from a time limit) together with the job as last read, which may be nil.
// It does not cancel the job: whether the work is still wanted is the
// caller's decision (see Cancel). Store errors end the wait as they are
// (ENOTFOUND, EUNAVAILABLE).
func (s *Service) Wait(ctx context.Context, id string, poll time.Duration) (*tts.Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if poll <= 0 {
		poll = DefaultWaitPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var last *tts.Job
	for {
		if err := ctx.Err(); err != nil {
			return last, err
		}
		job, err := s.store.FindJob(ctx, id)
		if err != nil {
			// A read cut short by ctx reports ctx's own error, not the
			// store's wrapping of it.
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = job
		if job.Status.Terminal() {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
}
