package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// The account store, the operator's queries (search, stats, purge) and the
// audio reference check, on whichever database the run uses (SQLite, or
// PostgreSQL with KOKORO_TEST_DATABASE=postgres).

func TestUsers(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()

	ann, err := s.CreateUser(ctx, &tts.User{Email: "Ann@Example.com", Role: tts.RoleAdmin, PasswordHash: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if ann.Email != "ann@example.com" || ann.Role != tts.RoleAdmin || ann.Disabled || ann.TokenVersion != 0 || !ann.CreatedAt.Equal(c.Now()) {
		t.Fatalf("created %+v", ann)
	}
	_, err = s.CreateUser(ctx, &tts.User{Email: "ANN@example.com", Role: tts.RoleUser, PasswordHash: "h"})
	wantCode(t, err, tts.ECONFLICT)
	_, err = s.CreateUser(ctx, &tts.User{Email: "x@example.com", Role: "root", PasswordHash: "h"})
	wantCode(t, err, tts.EINVALID)
	c.Advance(time.Second)
	bob, err := s.CreateUser(ctx, &tts.User{Email: "bob@example.com", Role: tts.RoleUser, PasswordHash: "h2"})
	if err != nil {
		t.Fatal(err)
	}

	if got, err := s.FindUserByEmail(ctx, "BOB@example.COM"); err != nil || got.ID != bob.ID {
		t.Fatalf("FindUserByEmail = %+v, %v", got, err)
	}
	_, err = s.FindUser(ctx, "no-such-user")
	wantCode(t, err, tts.ENOTFOUND)
	if us, err := s.ListUsers(ctx); err != nil || len(us) != 2 || us[0].ID != ann.ID || us[1].ID != bob.ID {
		t.Fatalf("ListUsers = %v, %v; want ann then bob", us, err)
	}
	if n, err := s.CountAdmins(ctx); err != nil || n != 1 {
		t.Fatalf("CountAdmins = %d, %v", n, err)
	}

	c.Advance(time.Second)
	admin, yes, hash := tts.RoleAdmin, true, "h3"
	got, err := s.UpdateUser(ctx, bob.ID, tts.UserPatch{Role: &admin, Disabled: &yes, PasswordHash: &hash, EndSessions: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != tts.RoleAdmin || !got.Disabled || got.PasswordHash != "h3" || got.TokenVersion != 1 || !got.UpdatedAt.Equal(c.Now()) {
		t.Fatalf("updated %+v", got)
	}
	if n, err := s.CountAdmins(ctx); err != nil || n != 1 {
		t.Fatalf("CountAdmins with the new admin disabled = %d, %v; want 1", n, err)
	}
	bad := tts.Role("root")
	_, err = s.UpdateUser(ctx, bob.ID, tts.UserPatch{Role: &bad})
	wantCode(t, err, tts.EINVALID)
	_, err = s.UpdateUser(ctx, "no-such-user", tts.UserPatch{EndSessions: true})
	wantCode(t, err, tts.ENOTFOUND)

	at := c.Now().Add(time.Minute)
	if err := s.TouchLogin(ctx, ann.ID, at); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindUser(ctx, ann.ID); err != nil || got.LastLoginAt == nil || !got.LastLoginAt.Equal(at) {
		t.Fatalf("after TouchLogin: %+v, %v", got, err)
	}
}

func TestAPIKeys(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	ann, err := s.CreateUser(ctx, &tts.User{Email: "ann@example.com", Role: tts.RoleUser, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.CreateUser(ctx, &tts.User{Email: "bob@example.com", Role: tts.RoleUser, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}

	_, err = s.CreateAPIKey(ctx, &tts.APIKey{UserID: "no-such-user", Name: "x", Prefix: "ktts_x", Hash: "hx"})
	wantCode(t, err, tts.ENOTFOUND)
	k1, err := s.CreateAPIKey(ctx, &tts.APIKey{UserID: ann.ID, Name: "laptop", Prefix: "ktts_ab", Hash: "hash-1"})
	if err != nil {
		t.Fatal(err)
	}
	if k1.UserEmail != "ann@example.com" || k1.Name != "laptop" || k1.RevokedAt != nil || k1.LastUsedAt != nil {
		t.Fatalf("created %+v", k1)
	}
	_, err = s.CreateAPIKey(ctx, &tts.APIKey{UserID: bob.ID, Name: "same secret", Prefix: "ktts_ab", Hash: "hash-1"})
	wantCode(t, err, tts.ECONFLICT)
	k2, err := s.CreateAPIKey(ctx, &tts.APIKey{UserID: ann.ID, Name: "ci", Prefix: "ktts_cd", Hash: "hash-2"})
	if err != nil {
		t.Fatal(err)
	}
	k3, err := s.CreateAPIKey(ctx, &tts.APIKey{UserID: bob.ID, Name: "bob's", Prefix: "ktts_ef", Hash: "hash-3"})
	if err != nil {
		t.Fatal(err)
	}

	if got, err := s.FindAPIKeyByHash(ctx, "hash-2"); err != nil || got.ID != k2.ID || got.UserID != ann.ID {
		t.Fatalf("FindAPIKeyByHash = %+v, %v", got, err)
	}
	_, err = s.FindAPIKeyByHash(ctx, "hash-none")
	wantCode(t, err, tts.ENOTFOUND)
	ids := func(ks []*tts.APIKey) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.ID)
		}
		return out
	}
	if ks, err := s.ListAPIKeys(ctx, ann.ID); err != nil || len(ks) != 2 || ks[0].ID != k2.ID || ks[1].ID != k1.ID {
		t.Fatalf("ann's keys = %v, %v; want k2, k1 (newest first)", ids(ks), err)
	}
	if ks, err := s.ListAPIKeys(ctx, ""); err != nil || len(ks) != 3 || ks[0].ID != k3.ID {
		t.Fatalf("every key = %v, %v; want 3, k3 first", ids(ks), err)
	}

	first := c.Now().Add(time.Hour)
	if got, err := s.RevokeAPIKey(ctx, k1.ID, first); err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(first) {
		t.Fatalf("RevokeAPIKey = %+v, %v", got, err)
	}
	if got, err := s.RevokeAPIKey(ctx, k1.ID, first.Add(time.Hour)); err != nil || !got.RevokedAt.Equal(first) {
		t.Fatalf("a second revocation changed the time: %+v, %v", got, err)
	}
	_, err = s.RevokeAPIKey(ctx, "no-such-key", first)
	wantCode(t, err, tts.ENOTFOUND)
	used := c.Now().Add(2 * time.Minute)
	if err := s.TouchAPIKey(ctx, k2.ID, used); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindAPIKeyByHash(ctx, "hash-2"); err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
		t.Fatalf("after TouchAPIKey: %+v, %v", got, err)
	}
}

func TestListJobsTextSearch(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	a := create(t, s, newJob("Hello World, 50% off"))
	b := create(t, s, newJob("hello again"))
	create(t, s, newJob("5000 offers"))
	u := create(t, s, newJob("under_score"))
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"HELLO", []string{b.ID, a.ID}},
		{"world", []string{a.ID}},
		{"50%", []string{a.ID}}, // % is literal, not a wildcard
		{"r_s", []string{u.ID}},
		{"e_s", nil}, // _ is literal too: no "offers"
		{"nothing", nil},
	} {
		jobs, err := s.ListJobs(ctx, tts.JobFilter{Text: tc.text})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, j.ID)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("search %q = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestPurgeJobAndAudioKeyInUse(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	live := create(t, s, newJob("still running"))
	done := create(t, s, newJob("finished"))
	if _, err := s.StartAttempt(ctx, done.ID, "e", "cpu"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(ctx, done.ID, 1, tts.Audio{Key: "cache/abc.mp3", ContentType: "audio/mpeg", Bytes: 10, DurationSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	if in, err := s.AudioKeyInUse(ctx, "cache/abc.mp3"); err != nil || !in {
		t.Fatalf("AudioKeyInUse = %v, %v", in, err)
	}
	_, err := s.PurgeJob(ctx, live.ID)
	wantCode(t, err, tts.ECONFLICT)
	_, err = s.PurgeJob(ctx, "no-such-job")
	wantCode(t, err, tts.ENOTFOUND)
	got, err := s.PurgeJob(ctx, done.ID)
	if err != nil || got.ID != done.ID || got.Audio == nil || got.Audio.Key != "cache/abc.mp3" {
		t.Fatalf("PurgeJob = %+v, %v", got, err)
	}
	_, err = s.FindJob(ctx, done.ID)
	wantCode(t, err, tts.ENOTFOUND)
	if in, err := s.AudioKeyInUse(ctx, "cache/abc.mp3"); err != nil || in {
		t.Fatalf("AudioKeyInUse after the purge = %v, %v", in, err)
	}
}

func TestJobStats(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	since := c.Now().Add(-time.Minute)
	// Waits of 1, 2, ..., 10 s; syntheses of 2 s for the succeeded ones.
	var jobs []*tts.Job
	for i := range 10 {
		j := create(t, s, newJob("job"))
		jobs = append(jobs, j)
		c.Advance(time.Duration(i+1) * time.Second)
		if _, err := s.StartAttempt(ctx, j.ID, "e", "cpu"); err != nil {
			t.Fatal(err)
		}
		c.Advance(2 * time.Second)
		switch {
		case i < 7:
			if err := s.CompleteJob(ctx, j.ID, 1, tts.Audio{Key: "k", ContentType: "audio/wav", Bytes: 1}); err != nil {
				t.Fatal(err)
			}
		case i < 9:
			if err := s.FailJob(ctx, j.ID, 1, "boom"); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := s.RequestCancel(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.CancelJob(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
		}
		c.Advance(-time.Duration(i+3) * time.Second) // every job is created at the same time
	}
	create(t, s, newJob("queued, never started"))
	st, err := s.JobStats(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	want := tts.JobStats{Since: since, Submitted: 11, Succeeded: 7, Failed: 2, Canceled: 1,
		WaitP50: 5 * time.Second, WaitP95: 10 * time.Second, SynthP50: 2 * time.Second, SynthP95: 2 * time.Second, SampleSize: 10}
	if st != want {
		t.Fatalf("JobStats = %+v\nwant       %+v", st, want)
	}
	// A window after everything: nothing submitted, started or finished in it.
	if st, err := s.JobStats(ctx, c.Now().Add(time.Hour)); err != nil || st.Succeeded != 0 || st.SampleSize != 0 {
		t.Fatalf("JobStats of a later window = %+v, %v", st, err)
	}
}
