package browser

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestAdminDashboard: the operator logs in through the /admin gate, reads
// the overview, finds a user's job, and retries, cancels and deletes jobs,
// manages users and API keys, all through the dashboard; every action is
// checked against the API.
func TestAdminDashboard(t *testing.T) {
	s := startService(t, true)
	admin := s.adminToken()
	userEmail, userPass := "teacher@example.com", randPassword()
	userID := s.createUser(admin, userEmail, userPass, "user")
	utok := s.login(userEmail, userPass)
	doneText := "A finished job of the teacher."
	done := s.submit(utok, doneText)
	s.waitJob(utok, done, func(st string) bool { return st == "succeeded" })
	// A job that fails (every FLAC encoding does here) after its retries;
	// it is looked at last, once the backoff has run out.
	failText := "A job whose encoder always fails."
	failing := s.submitFormat(utok, failText, "flac")

	tb := newTab(t, s.base)

	// The gate sends a visitor with no session to log in, and back after,
	// to the view asked for.
	tb.open("/admin#/users")
	tb.until("the log-in page with ?next=/admin", `location.pathname === '/' && new URLSearchParams(location.search).get('next') === '/admin'`)
	tb.login(s.adminEmail, s.adminPass)
	tb.until("the dashboard's Users view after log-in", `location.pathname === '/admin' && location.hash === '#/users' && !document.querySelector('#view-users').hidden`)
	tb.until("the admin in the user list", fmt.Sprintf(`!!document.querySelector('#users-table tr[data-email=%s]')`, jsq(s.adminEmail)))

	// Overview.
	tb.click("[data-testid=tab-overview]")
	tb.until("the queues", `document.querySelectorAll('#ov-queues tr[data-queue]').length > 0`)
	tb.until("a worker", `document.querySelectorAll('#ov-workers tr[data-worker]').length > 0`)
	if q := eval[[]string](tb, `[...document.querySelectorAll('#ov-queues tr[data-queue]')].map((r) => r.dataset.queue)`); !contains(q, "interactive") {
		t.Errorf("overview queues %v, want interactive among them", q)
	}
	if w := tb.text("#ov-workers tbody"); !strings.Contains(w, "tone") || !strings.Contains(w, "cpu") {
		t.Errorf("overview worker row %q, want engine tone on cpu", w)
	}
	tb.until("the succeeded count", `Number(document.querySelector('[data-testid=ov-state-succeeded] .v').textContent) >= 1`)
	tb.shot("overview")
	tb.narrow()
	tb.shot("overview-narrow")
	tb.wide()

	// Jobs, filtered by the user; then the job's page.
	tb.click("[data-testid=tab-jobs]")
	tb.visible("#jobs-filter")
	tb.until("the jobs view", `location.hash.startsWith('#/jobs') && document.querySelector('#jobs-table').dataset.loaded === location.hash`)
	tb.typeInto("#f-user", userEmail)
	tb.click("[data-testid=f-apply]")
	row := fmt.Sprintf(`#jobs-table tr[data-job-id=%s]`, jsq(done))
	tb.until("the list filtered by user", `location.hash.includes('user=') && document.querySelector('#jobs-table').dataset.loaded === location.hash`)
	if !eval[bool](tb, fmt.Sprintf(`!!document.querySelector(%q)`, row)) {
		t.Errorf("the user's job %s is not in the list filtered by the user", done)
	}
	users := eval[[]string](tb, `[...document.querySelectorAll('#jobs-table tr[data-job-id]')].map((r) => r.cells[1].textContent)`)
	for _, u := range users {
		if u != userEmail {
			t.Errorf("filtered by %s, the list shows a job of %q", userEmail, u)
		}
	}
	tb.shot("jobs")
	tb.click(row)
	tb.until("the job's page", fmt.Sprintf(`document.querySelector('#jd-id').textContent === %s && !document.querySelector('#view-job').hidden`, jsq(done)))
	if st := eval[string](tb, `document.querySelector('#jd-status').dataset.status`); st != "succeeded" {
		t.Errorf("detail status %q", st)
	}
	if got := tb.text("#jd-text"); got != doneText {
		t.Errorf("detail text %q, want %q", got, doneText)
	}
	if got := tb.text("#jd-fields"); !strings.Contains(got, userEmail) {
		t.Errorf("detail fields %q do not name the owner", got)
	}
	tb.until("the timeline", `[...document.querySelectorAll('#jd-timeline li')].some((li) => li.dataset.type === 'succeeded')`)
	checkAudioURL(t, s, tb, checkPlayer(t, tb, "#jd-audio"))
	tb.shot("job")

	// Hold encoding: one job runs (concurrency 1), the next stays queued.
	s.hold(true)
	running := s.submit(utok, "A job kept running by the hold.")
	s.waitJob(utok, running, func(st string) bool { return st == "running" })
	queuedText := "A job that waits in the queue."
	queued := s.submit(utok, queuedText)
	if j := s.must(200, "GET", "/api/jobs/"+queued, utok, nil); j["status"] != "queued" {
		t.Fatalf("second job is %v, want queued behind the held one", j["status"])
	}

	// Cancel the queued job from its page.
	tb.route("#/jobs/" + queued)
	tb.until("the queued job's page", fmt.Sprintf(`document.querySelector('#jd-id').textContent === %s && document.querySelector('#jd-status').dataset.status === 'queued'`, jsq(queued)))
	tb.click("#jd-cancel")
	tb.confirm()
	tb.until("the job to show canceled", `document.querySelector('#jd-status').dataset.status === 'canceled'`)
	s.waitJob(utok, queued, func(st string) bool { return st == "canceled" })

	// Retry it: a new job with the same request and owner.
	tb.click("#jd-retry")
	tb.confirm()
	tb.until("the new job's page", fmt.Sprintf(`location.hash.startsWith('#/jobs/') && location.hash !== '#/jobs/' + %s && document.querySelector('#jd-id').textContent === decodeURIComponent(location.hash.slice(7))`, jsq(queued)))
	retried := eval[string](tb, `decodeURIComponent(location.hash.slice(7))`)
	if got := tb.text("#notice"); !strings.Contains(got, retried) {
		t.Errorf("notice %q does not name the new job %s", got, retried)
	}
	nj := s.must(200, "GET", "/api/admin/jobs/"+retried, admin, nil)["job"].(map[string]any)
	if nj["user_id"] != userID || nj["text"] != queuedText {
		t.Errorf("retried job: owner %v text %q, want %s and %q", nj["user_id"], nj["text"], userID, queuedText)
	}
	tb.shot("retried")

	// Cancel the running job: the page follows it to canceled.
	tb.route("#/jobs/" + running)
	tb.until("the running job's page", fmt.Sprintf(`document.querySelector('#jd-id').textContent === %s && document.querySelector('#jd-status').dataset.status === 'running'`, jsq(running)))
	tb.click("#jd-cancel")
	tb.confirm()
	tb.until("the running job to end canceled", `document.querySelector('#jd-status').dataset.status === 'canceled'`)
	s.waitJob(utok, running, func(st string) bool { return st == "canceled" })
	s.hold(false)
	s.waitJob(utok, retried, func(st string) bool { return st == "succeeded" })

	// Delete the canceled job.
	tb.route("#/jobs/" + queued)
	tb.until("the canceled job's page", fmt.Sprintf(`document.querySelector('#jd-id').textContent === %s && !document.querySelector('#jd-delete').hidden`, jsq(queued)))
	tb.click("#jd-delete")
	tb.confirm()
	tb.until("the jobs list after the delete", `location.hash === '#/jobs' && document.querySelector('#notice').textContent.includes('deleted')`)
	if st, _ := s.call("GET", "/api/admin/jobs/"+queued, admin, nil); st != http.StatusNotFound {
		t.Errorf("deleted job answers %d, want 404", st)
	}

	// Users: create one, disable it (it can no longer log in), enable it.
	tb.click("[data-testid=tab-users]")
	studentEmail, studentPass := "student@example.com", randPassword()
	tb.typeInto("#u-email", studentEmail)
	tb.typeInto("#u-password", studentPass)
	tb.choose("#u-role", "user")
	tb.click("[data-testid=u-create]")
	srow := fmt.Sprintf(`#users-table tr[data-email=%s]`, jsq(studentEmail))
	tb.until("the new user in the list", fmt.Sprintf(`!!document.querySelector(%q)`, srow))
	studentTok := s.login(studentEmail, studentPass)
	studentID := eval[string](tb, fmt.Sprintf(`document.querySelector(%q).dataset.userId`, srow))
	tb.click(srow + " [data-testid=user-toggle]")
	tb.confirm()
	tb.until("the user to show disabled", fmt.Sprintf(`document.querySelector(%q).cells[2].textContent === 'disabled'`, srow))
	if st, _ := s.call("POST", "/api/auth/login", "", map[string]string{"email": studentEmail, "password": studentPass}); st != 401 && st != 403 {
		t.Errorf("a disabled user logs in: %d", st)
	}
	if st, _ := s.call("GET", "/api/jobs", studentTok, nil); st != 401 && st != 403 {
		t.Errorf("a disabled user's token still works: %d", st)
	}
	tb.shot("users")
	tb.click(srow + " [data-testid=user-toggle]")
	tb.confirm()
	tb.until("the user to show active", fmt.Sprintf(`document.querySelector(%q).cells[2].textContent === 'active'`, srow))
	s.login(studentEmail, studentPass)

	// API keys: create one for the student, use it, revoke it.
	tb.click("[data-testid=tab-keys]")
	tb.until("the user choices", fmt.Sprintf(`!!document.querySelector('#k-user option[value=%s]')`, jsq(studentID)))
	tb.choose("#k-user", studentID)
	tb.typeInto("#k-name", "importer")
	tb.click("[data-testid=k-create]")
	tb.until("the new key", `!document.querySelector('#k-secret-box').hidden && document.querySelector('#k-secret').value !== ''`)
	secret := eval[string](tb, `document.querySelector('#k-secret').value`)
	krow := `#keys-table tr[data-key-id]`
	tb.until("the key in the list", fmt.Sprintf(`[...document.querySelectorAll(%q)].some((r) => r.textContent.includes('importer') && r.textContent.includes(%s))`, krow, jsq(studentEmail)))
	if st := keyStatus(t, s, secret); st != 200 {
		t.Fatalf("GET /api/jobs with the new key: %d", st)
	}
	tb.shot("keys")
	tb.click(krow + " [data-testid=key-revoke]")
	tb.confirm()
	tb.until("the key to show revoked", `document.querySelectorAll('#keys-table [data-testid=key-revoke]').length === 0`)
	if st := keyStatus(t, s, secret); st != 401 {
		t.Errorf("GET /api/jobs with a revoked key: %d, want 401", st)
	}

	// The failed job: found by status, its error shown, retried.
	s.waitJob(utok, failing, func(st string) bool { return st == "failed" })
	// Let the view finish loading first: it fills the filters from the
	// address when it does, which would undo a choice made before.
	eval[string](tb, `(() => { delete document.querySelector('#jobs-table').dataset.loaded; return ''; })()`)
	tb.click("[data-testid=tab-jobs]")
	tb.until("the jobs view", `location.hash.startsWith('#/jobs') && document.querySelector('#jobs-table').dataset.loaded === location.hash`)
	tb.choose("#f-status", "failed")
	tb.do("clearing the user filter", setValueJS("#f-user", ""))
	tb.click("[data-testid=f-apply]")
	frow := fmt.Sprintf(`#jobs-table tr[data-job-id=%s]`, jsq(failing))
	tb.until("the list filtered by status", `location.hash.includes('status=failed') && document.querySelector('#jobs-table').dataset.loaded === location.hash`)
	if st := eval[[]string](tb, `[...document.querySelectorAll('#jobs-table tr[data-job-id]')].map((r) => r.dataset.status)`); len(st) != 1 || st[0] != "failed" {
		t.Errorf("jobs listed with status=failed: %v, want the one failed job", st)
	}
	tb.click(frow)
	tb.until("the failed job's page", fmt.Sprintf(`document.querySelector('#jd-id').textContent === %s`, jsq(failing)))
	failedJob := s.must(200, "GET", "/api/admin/jobs/"+failing, admin, nil)["job"].(map[string]any)
	errText, _ := failedJob["error"].(string)
	if errText == "" {
		t.Fatalf("the failed job has no error: %v", failedJob)
	}
	if got := tb.text("#jd-error"); got != errText || eval[bool](tb, `document.querySelector('#jd-error').hidden`) {
		t.Errorf("detail error %q, want the job's %q shown", got, errText)
	}
	tb.until("the failure in the timeline", `[...document.querySelectorAll('#jd-timeline li[data-type=failed] .err')].some((e) => e.textContent !== '')`)
	if eval[bool](tb, `!document.querySelector('#jd-cancel').hidden`) {
		t.Error("a failed job offers Cancel")
	}
	tb.shot("failed")
	tb.click("#jd-retry")
	tb.confirm()
	tb.until("the retry of the failed job", fmt.Sprintf(`location.hash.startsWith('#/jobs/') && location.hash !== '#/jobs/' + %s && document.querySelector('#jd-id').textContent === decodeURIComponent(location.hash.slice(7))`, jsq(failing)))
	again := eval[string](tb, `decodeURIComponent(location.hash.slice(7))`)
	aj := s.must(200, "GET", "/api/admin/jobs/"+again, admin, nil)["job"].(map[string]any)
	if aj["user_id"] != userID || aj["text"] != failText || aj["format"] != "flac" {
		t.Errorf("retry of the failed job: %v", aj)
	}

	// asynq's own dashboard is linked and opens with the admin's session.
	if href := eval[string](tb, `document.querySelector('#queues-link').getAttribute('href')`); href != "/admin/queues/" {
		t.Errorf("queues link %q", href)
	}
	if st := tb.openResponse("/admin/queues/"); st != 200 {
		t.Errorf("GET /admin/queues/ as the admin: %d", st)
	}
}

func keyStatus(t *testing.T, s *service, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/jobs", nil)
	req.Header.Set("X-API-Key", key)
	res, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
