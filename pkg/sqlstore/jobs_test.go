package sqlstore_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestCreateAndFindJob(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	in := newJob("Hello, world.")
	in.ID = "0190b1b2-0000-7000-8000-000000000001"
	in.Voice = "af_heart:0.6,am_adam:0.4"
	in.Speed = 1.25
	in.Format = tts.FormatWAV
	in.Queue = tts.QueueBatch
	in.IdempotencyKey = "key-1"
	// Fields the store owns are ignored.
	in.Attempts, in.Error, in.CancelRequested = 7, "old", true
	in.Audio = &tts.Audio{Key: "nope"}
	in.Engine, in.Device = "x", "y"
	in.UpdatedAt = time.Unix(1, 0)
	before := *in

	got, created, err := s.CreateJob(ctx, in)
	if err != nil || !created {
		t.Fatalf("CreateJob = %v, %v", created, err)
	}
	if !reflect.DeepEqual(*in, before) {
		t.Errorf("CreateJob modified its argument")
	}
	now := c.Now()
	want := &tts.Job{
		ID: in.ID, Status: tts.StatusQueued, Text: "Hello, world.", Voice: "af_heart:0.6,am_adam:0.4",
		Speed: 1.25, Format: tts.FormatWAV, Queue: tts.QueueBatch, MaxAttempts: 3,
		IdempotencyKey: "key-1", RequestHash: "hash-Hello, world.", CreatedAt: now, UpdatedAt: now,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CreateJob returned\n%+v\nwant\n%+v", got, want)
	}
	if found := find(t, s, in.ID); !reflect.DeepEqual(found, want) {
		t.Fatalf("FindJob returned\n%+v\nwant\n%+v", found, want)
	}
}

func TestCreateJobDefaultsAndCreatedAt(t *testing.T) {
	s, c := newStore(t)
	j := newJob("x")
	got := create(t, s, j)
	u, err := uuid.Parse(got.ID)
	if err != nil || u.Version() != 7 {
		t.Fatalf("generated id %q is not a UUIDv7 (%v)", got.ID, err)
	}
	if j.ID != "" {
		t.Fatalf("CreateJob set the argument's ID")
	}
	// A caller's CreatedAt is kept (to the millisecond); UpdatedAt is the store's clock.
	j = newJob("y")
	j.CreatedAt = time.Date(2024, 1, 2, 3, 4, 5, 678901234, time.UTC)
	got = create(t, s, j)
	if want := time.Date(2024, 1, 2, 3, 4, 5, 678000000, time.UTC); !got.CreatedAt.Equal(want) || !got.UpdatedAt.Equal(c.Now()) {
		t.Fatalf("CreatedAt %v UpdatedAt %v; want %v and %v", got.CreatedAt, got.UpdatedAt, want, c.Now())
	}
}

func TestCreateJobInvalid(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	j := newJob("x")
	j.Status = tts.StatusRunning
	_, _, err := s.CreateJob(ctx, j)
	wantCode(t, err, tts.EINVALID)

	j = newJob("x")
	j.MaxAttempts = 0
	_, _, err = s.CreateJob(ctx, j)
	wantCode(t, err, tts.EINVALID)

	first := create(t, s, newJob("x"))
	dup := newJob("y")
	dup.ID = first.ID
	_, created, err := s.CreateJob(ctx, dup)
	wantCode(t, err, tts.ECONFLICT)
	if created {
		t.Fatal("created=true with an error")
	}
	if got := find(t, s, first.ID); got.Text != "x" {
		t.Fatalf("duplicate id overwrote the job: %+v", got)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	j := newJob("same")
	j.IdempotencyKey = "k"
	first := create(t, s, j)

	c.Advance(time.Minute)
	again := newJob("same")
	again.IdempotencyKey = "k"
	got, created, err := s.CreateJob(ctx, again)
	if err != nil || created || !reflect.DeepEqual(got, first) {
		t.Fatalf("CreateJob with a used key = %+v, %v, %v; want the first job, false", got, created, err)
	}

	other := newJob("different")
	other.IdempotencyKey = "k"
	_, created, err = s.CreateJob(ctx, other)
	wantCode(t, err, tts.ECONFLICT)
	if created {
		t.Fatal("created=true with ECONFLICT")
	}

	// No key: every call creates.
	a, b := create(t, s, newJob("same")), create(t, s, newJob("same"))
	if a.ID == b.ID || a.IdempotencyKey != "" {
		t.Fatalf("jobs without a key: %q %q key %q", a.ID, b.ID, a.IdempotencyKey)
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil || counts[tts.StatusQueued] != 3 {
		t.Fatalf("CountByStatus = %v, %v; want 3 queued", counts, err)
	}
}

// TestIdempotencyKeyRace: many concurrent creates with one key create one
// job, and every caller gets that job.
func TestIdempotencyKeyRace(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	type result struct {
		job     *tts.Job
		created bool
		err     error
	}
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := newJob("race")
			j.IdempotencyKey = "race-key"
			<-start
			got, created, err := s.CreateJob(ctx, j)
			results[i] = result{got, created, err}
		}()
	}
	close(start)
	wg.Wait()
	var createdID string
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.created {
			if createdID != "" {
				t.Fatalf("two callers created a job: %s and %s", createdID, r.job.ID)
			}
			createdID = r.job.ID
		}
	}
	if createdID == "" {
		t.Fatal("no caller created the job")
	}
	for i, r := range results {
		if r.job.ID != createdID {
			t.Fatalf("caller %d got job %s, want %s", i, r.job.ID, createdID)
		}
	}
	jobs, err := s.ListJobs(ctx, tts.JobFilter{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ListJobs = %d jobs, %v; want 1", len(jobs), err)
	}
}

func TestNotFound(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	create(t, s, newJob("someone else"))
	const id = "0190b1b2-0000-7000-8000-00000000dead"
	calls := map[string]func() error{
		"FindJob":       func() error { _, err := s.FindJob(ctx, id); return err },
		"DeleteJob":     func() error { return s.DeleteJob(ctx, id) },
		"StartAttempt":  func() error { _, err := s.StartAttempt(ctx, id, "e", "cpu"); return err },
		"CompleteJob":   func() error { return s.CompleteJob(ctx, id, 1, tts.Audio{Key: "k"}) },
		"FailJob":       func() error { return s.FailJob(ctx, id, 1, "x") },
		"FailJob any":   func() error { return s.FailJob(ctx, id, 0, "x") },
		"RequestCancel": func() error { _, err := s.RequestCancel(ctx, id); return err },
		"CancelJob":     func() error { return s.CancelJob(ctx, id) },
		"RequeueJob":    func() error { return s.RequeueJob(ctx, id) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), tts.ENOTFOUND) })
	}
}

func TestAttemptLifecycle(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	j := create(t, s, newJob("x"))

	c.Advance(time.Second)
	firstStart := c.Now()
	a1, err := s.StartAttempt(ctx, j.ID, "kokoro", "cuda")
	if err != nil || a1 != 1 {
		t.Fatalf("StartAttempt = %d, %v; want 1", a1, err)
	}
	got := find(t, s, j.ID)
	if got.Status != tts.StatusRunning || got.Attempts != 1 || got.Engine != "kokoro" || got.Device != "cuda" ||
		got.StartedAt == nil || !got.StartedAt.Equal(firstStart) || !got.UpdatedAt.Equal(firstStart) || got.FinishedAt != nil {
		t.Fatalf("after StartAttempt: %+v", got)
	}

	// A re-delivery starts attempt 2 and fences attempt 1 off.
	c.Advance(time.Second)
	a2, err := s.StartAttempt(ctx, j.ID, "espeak-ng", "cpu")
	if err != nil || a2 != 2 {
		t.Fatalf("second StartAttempt = %d, %v; want 2", a2, err)
	}
	wantCode(t, s.CompleteJob(ctx, j.ID, a1, tts.Audio{Key: "stale"}), tts.ECONFLICT)
	wantCode(t, s.FailJob(ctx, j.ID, a1, "stale"), tts.ECONFLICT)

	c.Advance(time.Second)
	audio := tts.Audio{Key: "jobs/x.mp3", ContentType: "audio/mpeg", Bytes: 12345, DurationSeconds: 2.5}
	if err := s.CompleteJob(ctx, j.ID, a2, audio); err != nil {
		t.Fatal(err)
	}
	got = find(t, s, j.ID)
	if got.Status != tts.StatusSucceeded || got.Audio == nil || *got.Audio != audio || got.Error != "" ||
		got.Engine != "espeak-ng" || got.Device != "cpu" || !got.StartedAt.Equal(firstStart) ||
		got.FinishedAt == nil || !got.FinishedAt.Equal(c.Now()) || !got.UpdatedAt.Equal(c.Now()) || got.Attempts != 2 {
		t.Fatalf("after CompleteJob: %+v audio %+v", got, got.Audio)
	}
}

func TestFailJob(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	j := create(t, s, newJob("x"))
	a, _ := s.StartAttempt(ctx, j.ID, "e", "cpu")
	c.Advance(time.Second)
	if err := s.FailJob(ctx, j.ID, a, "espeak-ng exited 1"); err != nil {
		t.Fatal(err)
	}
	got := find(t, s, j.ID)
	if got.Status != tts.StatusFailed || got.Error != "espeak-ng exited 1" || got.Audio != nil ||
		got.FinishedAt == nil || !got.FinishedAt.Equal(c.Now()) {
		t.Fatalf("after FailJob: %+v", got)
	}

	j = create(t, s, newJob("y"))
	if err := s.FailJob(ctx, j.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	if got := find(t, s, j.ID); got.Status != tts.StatusFailed || got.Error == "" {
		t.Fatalf("FailJob with no reason: %+v", got)
	}
}

func TestRequestCancel(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()

	queued := create(t, s, newJob("q"))
	c.Advance(time.Second)
	got, err := s.RequestCancel(ctx, queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tts.StatusCanceled || !got.CancelRequested || got.FinishedAt == nil ||
		!got.FinishedAt.Equal(c.Now()) || !got.UpdatedAt.Equal(c.Now()) {
		t.Fatalf("RequestCancel(queued) = %+v", got)
	}
	if found := find(t, s, queued.ID); !reflect.DeepEqual(found, got) {
		t.Fatalf("RequestCancel returned %+v, stored %+v", got, found)
	}

	running := create(t, s, newJob("r"))
	a, _ := s.StartAttempt(ctx, running.ID, "e", "cpu")
	c.Advance(time.Second)
	flaggedAt := c.Now()
	got, err = s.RequestCancel(ctx, running.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tts.StatusRunning || !got.CancelRequested || got.FinishedAt != nil || !got.UpdatedAt.Equal(flaggedAt) {
		t.Fatalf("RequestCancel(running) = %+v", got)
	}
	// Asking again changes nothing, not even UpdatedAt.
	c.Advance(time.Second)
	again, err := s.RequestCancel(ctx, running.ID)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("second RequestCancel = %+v, %v; want %+v", again, err, got)
	}
	// The worker sees the flag and answers.
	_, err = s.StartAttempt(ctx, running.ID, "e", "cpu")
	wantCode(t, err, tts.ECONFLICT)
	if err := s.CancelJob(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	if got := find(t, s, running.ID); got.Status != tts.StatusCanceled || got.FinishedAt == nil || got.Attempts != a {
		t.Fatalf("after CancelJob: %+v", got)
	}
	_, err = s.RequestCancel(ctx, running.ID)
	wantCode(t, err, tts.ECONFLICT)
}

func TestDeleteJob(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	j := newJob("x")
	j.IdempotencyKey = "retry-me"
	first := create(t, s, j)
	if err := s.DeleteJob(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.FindJob(ctx, first.ID)
	wantCode(t, err, tts.ENOTFOUND)
	// The key is free again.
	if again := create(t, s, j); again.ID == first.ID {
		t.Fatal("same id after delete")
	}
}

// state builders: each returns a job in the named state, and the attempt
// a worker running it would hold.
var states = map[string]func(t *testing.T, s *sqlstore.DB) (id string, attempt int){
	"queued": func(t *testing.T, s *sqlstore.DB) (string, int) {
		return create(t, s, newJob("queued")).ID, 0
	},
	"requeued": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("requeued")).ID
		a := mustStart(t, s, id)
		must(t, s.RequeueJob(context.Background(), id))
		return id, a
	},
	"running": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("running")).ID
		return id, mustStart(t, s, id)
	},
	"running+cancel": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("running+cancel")).ID
		a := mustStart(t, s, id)
		_, err := s.RequestCancel(context.Background(), id)
		must(t, err)
		return id, a
	},
	"succeeded": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("succeeded")).ID
		a := mustStart(t, s, id)
		must(t, s.CompleteJob(context.Background(), id, a, tts.Audio{Key: "k", ContentType: "audio/mpeg", Bytes: 1, DurationSeconds: 1}))
		return id, a
	},
	"failed": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("failed")).ID
		a := mustStart(t, s, id)
		must(t, s.FailJob(context.Background(), id, a, "boom"))
		return id, a
	},
	"canceled queued": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("canceled queued")).ID
		_, err := s.RequestCancel(context.Background(), id)
		must(t, err)
		return id, 0
	},
	"canceled running": func(t *testing.T, s *sqlstore.DB) (string, int) {
		id := create(t, s, newJob("canceled running")).ID
		a := mustStart(t, s, id)
		must(t, s.CancelJob(context.Background(), id))
		return id, a
	},
}

func mustStart(t *testing.T, s *sqlstore.DB, id string) int {
	t.Helper()
	a, err := s.StartAttempt(context.Background(), id, "e", "cpu")
	must(t, err)
	return a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// operations: each applies one change as a worker holding `attempt` (or
// the API, or the reconciler) would.
var operations = map[string]func(ctx context.Context, s *sqlstore.DB, id string, attempt int) error{
	"start": func(ctx context.Context, s *sqlstore.DB, id string, _ int) error {
		_, err := s.StartAttempt(ctx, id, "e2", "cuda")
		return err
	},
	"complete": func(ctx context.Context, s *sqlstore.DB, id string, a int) error {
		return s.CompleteJob(ctx, id, max(a, 1), tts.Audio{Key: "new", ContentType: "audio/wav", Bytes: 2, DurationSeconds: 2})
	},
	"complete other attempt": func(ctx context.Context, s *sqlstore.DB, id string, a int) error {
		return s.CompleteJob(ctx, id, a+1, tts.Audio{Key: "new"})
	},
	"fail": func(ctx context.Context, s *sqlstore.DB, id string, a int) error {
		return s.FailJob(ctx, id, max(a, 1), "new failure")
	},
	"fail any attempt": func(ctx context.Context, s *sqlstore.DB, id string, _ int) error {
		return s.FailJob(ctx, id, 0, "new failure")
	},
	"fail other attempt": func(ctx context.Context, s *sqlstore.DB, id string, a int) error {
		return s.FailJob(ctx, id, a+1, "new failure")
	},
	"request cancel": func(ctx context.Context, s *sqlstore.DB, id string, _ int) error {
		_, err := s.RequestCancel(ctx, id)
		return err
	},
	"cancel":  func(ctx context.Context, s *sqlstore.DB, id string, _ int) error { return s.CancelJob(ctx, id) },
	"requeue": func(ctx context.Context, s *sqlstore.DB, id string, _ int) error { return s.RequeueJob(ctx, id) },
	"delete":  func(ctx context.Context, s *sqlstore.DB, id string, _ int) error { return s.DeleteJob(ctx, id) },
}

// TestTransitions applies every operation to a job in every state: the
// allowed ones reach the expected state, every other one is ECONFLICT and
// leaves the row exactly as it was. Terminal states refuse everything.
func TestTransitions(t *testing.T) {
	const conflict = "conflict"
	const deleted = "deleted"
	terminal := map[string]string{}
	for op := range operations {
		terminal[op] = conflict
	}
	want := map[string]map[string]string{ // state -> operation -> resulting status, conflict or deleted
		"queued": {
			"start": "running", "complete": conflict, "complete other attempt": conflict,
			"fail": conflict, "fail any attempt": "failed", "fail other attempt": conflict,
			"request cancel": "canceled", "cancel": "canceled", "requeue": conflict, "delete": deleted,
		},
		"requeued": {
			"start": "running", "complete": conflict, "complete other attempt": conflict,
			"fail": conflict, "fail any attempt": "failed", "fail other attempt": conflict,
			"request cancel": "canceled", "cancel": "canceled", "requeue": conflict, "delete": conflict,
		},
		"running": {
			"start": "running", "complete": "succeeded", "complete other attempt": conflict,
			"fail": "failed", "fail any attempt": "failed", "fail other attempt": conflict,
			"request cancel": "running", "cancel": "canceled", "requeue": "queued", "delete": conflict,
		},
		"running+cancel": {
			"start": conflict, "complete": "succeeded", "complete other attempt": conflict,
			"fail": "failed", "fail any attempt": "failed", "fail other attempt": conflict,
			"request cancel": "running", "cancel": "canceled", "requeue": conflict, "delete": conflict,
		},
		"succeeded":        terminal,
		"failed":           terminal,
		"canceled queued":  terminal,
		"canceled running": terminal,
	}
	if len(want) != len(states) {
		t.Fatalf("the table covers %d states, there are %d", len(want), len(states))
	}
	s, c := newStore(t)
	ctx := context.Background()
	for state, build := range states {
		for op, apply := range operations {
			t.Run(state+"/"+op, func(t *testing.T) {
				expect, ok := want[state][op]
				if !ok {
					t.Fatalf("no expectation for %s/%s", state, op)
				}
				id, attempt := build(t, s)
				before := find(t, s, id)
				c.Advance(time.Second)
				err := apply(ctx, s, id, attempt)
				switch expect {
				case conflict:
					wantCode(t, err, tts.ECONFLICT)
					if after := find(t, s, id); !reflect.DeepEqual(after, before) {
						t.Fatalf("a refused %s changed the job:\nbefore %+v\nafter  %+v", op, before, after)
					}
				case deleted:
					wantCode(t, err, "")
					_, err := s.FindJob(ctx, id)
					wantCode(t, err, tts.ENOTFOUND)
				default:
					wantCode(t, err, "")
					after := find(t, s, id)
					if string(after.Status) != expect {
						t.Fatalf("status after %s = %s, want %s", op, after.Status, expect)
					}
					if after.Status.Terminal() && (after.FinishedAt == nil || !after.FinishedAt.Equal(c.Now())) {
						t.Fatalf("terminal job without FinishedAt = now: %+v", after)
					}
					if !after.Status.Terminal() && after.FinishedAt != nil {
						t.Fatalf("live job with FinishedAt: %+v", after)
					}
					if after.Status == tts.StatusSucceeded && (after.Audio == nil || after.Audio.Key != "new") {
						t.Fatalf("succeeded without the new audio: %+v", after.Audio)
					}
					if after.Status != tts.StatusSucceeded && after.Audio != nil {
						t.Fatalf("audio on a %s job", after.Status)
					}
				}
			})
		}
	}
}

// TestCompleteFailRace: a worker's CompleteJob and a FailJob of the same
// attempt race; exactly one wins and the job stays in the winner's state.
func TestCompleteFailRace(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	wins := map[tts.JobStatus]int{}
	for i := range 40 {
		id := create(t, s, newJob(fmt.Sprint("race ", i))).ID
		a := mustStart(t, s, id)
		var wg sync.WaitGroup
		start := make(chan struct{})
		var errComplete, errFail error
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			errComplete = s.CompleteJob(ctx, id, a, tts.Audio{Key: "k"})
		}()
		go func() {
			defer wg.Done()
			<-start
			// Alternate the reconciler's any-attempt form with the worker's.
			errFail = s.FailJob(ctx, id, a*(i%2), "lost")
		}()
		close(start)
		wg.Wait()
		got := find(t, s, id)
		switch {
		case errComplete == nil && errFail == nil:
			t.Fatalf("both CompleteJob and FailJob succeeded; job is %s", got.Status)
		case errComplete == nil:
			wantCode(t, errFail, tts.ECONFLICT)
			if got.Status != tts.StatusSucceeded {
				t.Fatalf("CompleteJob won but the job is %s", got.Status)
			}
		case errFail == nil:
			wantCode(t, errComplete, tts.ECONFLICT)
			if got.Status != tts.StatusFailed {
				t.Fatalf("FailJob won but the job is %s", got.Status)
			}
		default:
			t.Fatalf("neither won: %v / %v", errComplete, errFail)
		}
		wins[got.Status]++
	}
	t.Logf("winners: %v", wins)
}

// TestCompleteRace: two workers holding the same attempt complete it at
// once; one wins.
func TestCompleteRace(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range 20 {
		id := create(t, s, newJob(fmt.Sprint("race ", i))).ID
		a := mustStart(t, s, id)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[w] = s.CompleteJob(ctx, id, a, tts.Audio{Key: fmt.Sprint("worker-", w)})
			}()
		}
		close(start)
		wg.Wait()
		won := -1
		for w, err := range errs {
			if err == nil {
				if won >= 0 {
					t.Fatal("both workers completed the job")
				}
				won = w
			} else {
				wantCode(t, err, tts.ECONFLICT)
			}
		}
		if won < 0 {
			t.Fatal("no worker completed the job")
		}
		if got := find(t, s, id); got.Audio.Key != fmt.Sprint("worker-", won) {
			t.Fatalf("audio %q, but worker %d won", got.Audio.Key, won)
		}
	}
}

func TestListJobsPagination(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	statuses := map[string]tts.JobStatus{}
	for i := range 57 {
		j := create(t, s, newJob(fmt.Sprint("job ", i)))
		switch i % 3 {
		case 1:
			mustStart(t, s, j.ID)
		case 2:
			_, err := s.RequestCancel(ctx, j.ID)
			must(t, err)
		}
		statuses[j.ID] = find(t, s, j.ID).Status
	}

	for _, filter := range []tts.JobStatus{"", tts.StatusQueued, tts.StatusRunning, tts.StatusCanceled, tts.StatusSucceeded} {
		t.Run("status="+string(filter), func(t *testing.T) {
			var want []string
			for id, st := range statuses {
				if filter == "" || st == filter {
					want = append(want, id)
				}
			}
			sort.Sort(sort.Reverse(sort.StringSlice(want)))

			var got []string
			before := ""
			for page := 0; ; page++ {
				if page > 20 {
					t.Fatal("pagination does not end")
				}
				jobs, err := s.ListJobs(ctx, tts.JobFilter{Status: filter, Before: before, Limit: 10})
				must(t, err)
				if len(jobs) > 10 {
					t.Fatalf("page of %d jobs, limit 10", len(jobs))
				}
				for _, j := range jobs {
					if filter != "" && j.Status != filter {
						t.Fatalf("job %s is %s, filter %s", j.ID, j.Status, filter)
					}
					got = append(got, j.ID)
				}
				if len(jobs) < 10 {
					break
				}
				before = jobs[len(jobs)-1].ID
			}
			if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("pages listed %d jobs\n%v\nwant %d, newest first\n%v", len(got), got, len(want), want)
			}
		})
	}

	jobs, err := s.ListJobs(ctx, tts.JobFilter{})
	if err != nil || len(jobs) != sqlstore.DefaultListLimit {
		t.Fatalf("default limit: %d jobs, %v; want %d", len(jobs), err, sqlstore.DefaultListLimit)
	}
	_, err = s.ListJobs(ctx, tts.JobFilter{Status: "done"})
	wantCode(t, err, tts.EINVALID)
}

func TestListJobsLimitCap(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range sqlstore.MaxListLimit + 5 {
		create(t, s, newJob(fmt.Sprint(i)))
	}
	jobs, err := s.ListJobs(ctx, tts.JobFilter{Limit: 1000})
	// One over a page, so a caller can tell whether a next page exists.
	if err != nil || len(jobs) != sqlstore.MaxListLimit+1 {
		t.Fatalf("ListJobs(limit 1000) = %d jobs, %v; want %d", len(jobs), err, sqlstore.MaxListLimit+1)
	}
}

func TestStaleJobs(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	t0 := c.Now()
	oldQueued := create(t, s, newJob("old queued")).ID
	c.Advance(time.Minute)
	oldRunning := create(t, s, newJob("old running")).ID
	mustStart(t, s, oldRunning) // updated at t0+1m
	c.Advance(time.Minute)
	oldDone := create(t, s, newJob("old done")).ID
	must(t, s.FailJob(ctx, oldDone, 0, "x")) // terminal: never stale
	c.Advance(time.Minute)
	create(t, s, newJob("fresh")) // updated at t0+3m: not before the cutoff

	stale, err := s.StaleJobs(ctx, t0.Add(3*time.Minute), 0)
	must(t, err)
	var ids []string
	for _, j := range stale {
		ids = append(ids, j.ID)
	}
	if want := []string{oldQueued, oldRunning}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("StaleJobs = %v, want %v (oldest first, live only)", ids, want)
	}
	stale, err = s.StaleJobs(ctx, t0.Add(time.Hour), 1)
	if err != nil || len(stale) != 1 || stale[0].ID != oldQueued {
		t.Fatalf("StaleJobs(limit 1) = %v, %v", stale, err)
	}
	stale, err = s.StaleJobs(ctx, t0, 10)
	if err != nil || len(stale) != 0 {
		t.Fatalf("StaleJobs(before the first) = %v, %v", stale, err)
	}
}

func TestCountByStatus(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	counts, err := s.CountByStatus(ctx)
	must(t, err)
	want := map[tts.JobStatus]int{tts.StatusQueued: 0, tts.StatusRunning: 0, tts.StatusSucceeded: 0, tts.StatusFailed: 0, tts.StatusCanceled: 0}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("empty CountByStatus = %v", counts)
	}
	for _, build := range states {
		build(t, s)
	}
	counts, err = s.CountByStatus(ctx)
	must(t, err)
	want = map[tts.JobStatus]int{tts.StatusQueued: 2, tts.StatusRunning: 2, tts.StatusSucceeded: 1, tts.StatusFailed: 1, tts.StatusCanceled: 2}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("CountByStatus = %v, want %v", counts, want)
	}
}

func BenchmarkCreateJob(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	j := newJob("The quick brown fox jumps over the lazy dog.")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.CreateJob(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateJobParallel is CreateJob from GOMAXPROCS×4 goroutines at
// once (API replicas and workers writing together): SQLite serialises the
// writers, PostgreSQL does not.
func BenchmarkCreateJobParallel(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		j := newJob("The quick brown fox jumps over the lazy dog.")
		for pb.Next() {
			if _, _, err := s.CreateJob(ctx, j); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStartCompleteJob measures a worker's two writes for one job
// (StartAttempt then CompleteJob); ns/op covers both.
func BenchmarkStartCompleteJob(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	ids := make([]string, b.N)
	for i := range ids {
		j, _, err := s.CreateJob(ctx, newJob("x"))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = j.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, err := s.StartAttempt(ctx, ids[i], "kokoro", "cpu")
		if err != nil {
			b.Fatal(err)
		}
		if err := s.CompleteJob(ctx, ids[i], a, tts.Audio{Key: ids[i], ContentType: "audio/mpeg", Bytes: 1000, DurationSeconds: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReleaseAttempt(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	j := create(t, s, newJob("Interrupted by a deploy."))
	a, err := s.StartAttempt(ctx, j.ID, "e", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseAttempt(ctx, j.ID, a+1); tts.ErrorCode(err) != tts.ECONFLICT {
		t.Fatalf("releasing another attempt: %v", err)
	}
	if err := s.ReleaseAttempt(ctx, j.ID, a); err != nil {
		t.Fatal(err)
	}
	got, _ := s.FindJob(ctx, j.ID)
	if got.Status != tts.StatusQueued || got.Attempts != 0 {
		t.Fatalf("after release: %s attempts=%d", got.Status, got.Attempts)
	}
	if err := s.ReleaseAttempt(ctx, j.ID, a); tts.ErrorCode(err) != tts.ECONFLICT {
		t.Fatalf("releasing twice: %v", err)
	}
	if err := s.ReleaseAttempt(ctx, "0192d6a4-0000-7000-8000-0000000000ff", 1); tts.ErrorCode(err) != tts.ENOTFOUND {
		t.Fatalf("unknown job: %v", err)
	}
}

func TestHeartbeat(t *testing.T) {
	s, clock := newStore(t)
	ctx := context.Background()
	j := create(t, s, newJob("Still working."))
	a, err := s.StartAttempt(ctx, j.ID, "e", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.FindJob(ctx, j.ID)
	clock.Advance(5 * time.Second)
	if c, err := s.Heartbeat(ctx, j.ID, a); err != nil || c {
		t.Fatalf("heartbeat: %v %v", c, err)
	}
	after, _ := s.FindJob(ctx, j.ID)
	if !after.UpdatedAt.After(before.UpdatedAt) {
		t.Fatal("heartbeat did not touch the row")
	}
	if _, err := s.RequestCancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Heartbeat(ctx, j.ID, a); err != nil || !c {
		t.Fatalf("heartbeat after cancel request: %v %v", c, err)
	}
	if _, err := s.Heartbeat(ctx, j.ID, a+1); tts.ErrorCode(err) != tts.ECONFLICT {
		t.Fatalf("heartbeat of another attempt: %v", err)
	}
}
