package browser

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// speak types a sentence on the try-it page, submits it and waits for the
// job to succeed. It returns the job id.
func speak(t *testing.T, tb *tab, text string) string {
	t.Helper()
	tb.until("the voice list", `document.querySelectorAll('#voice optgroup').length > 1`)
	tb.typeInto("#text", text)
	tb.until("the character counter", fmt.Sprintf(`document.querySelector('#counter').textContent.startsWith('%d ')`, len([]rune(text))))
	prev := tb.text("#job-id")
	tb.click("#submit")
	tb.until("the new job's id", fmt.Sprintf(`!['', %s].includes(document.querySelector('#job-id').textContent)`, jsq(prev)))
	id := tb.text("#job-id")
	tb.until("the job to succeed", `(() => {
		const s = document.querySelector('#status').dataset.status;
		if (s === 'failed' || s === 'canceled') throw new Error('FAIL: job ended ' + s + ': ' + document.querySelector('#job-error').textContent);
		return s === 'succeeded';
	})()`)
	return id
}

// checkPlayer waits until the page's player has loaded the audio and
// returns its source.
func checkPlayer(t *testing.T, tb *tab, sel string) string {
	t.Helper()
	tb.until("the player to load the audio", fmt.Sprintf(`(() => {
		const a = document.querySelector(%q);
		// An error while the page retries with the bearer token is not final.
		if (a.error && ['failed', 'bearer'].includes(a.dataset.via)) throw new Error('FAIL: audio element error ' + a.error.code + ' ' + a.error.message + ' (via ' + a.dataset.via + ')');
		return a.src !== '' && a.readyState >= 1 && a.duration > 0;
	})()`, sel))
	return eval[string](tb, fmt.Sprintf(`document.querySelector(%q).src`, sel))
}

// checkAudioURL fetches an audio URL the page uses, the way the browser
// does (with its cookies), and checks it is audio.
func checkAudioURL(t *testing.T, s *service, tb *tab, src string) {
	t.Helper()
	if !strings.HasPrefix(src, s.base+"/") {
		t.Fatalf("audio src %q is not on the service", src)
	}
	st, ctype, body := s.getWithCookie(strings.TrimPrefix(src, s.base), tb.cookieHeader())
	if st != 200 || !strings.HasPrefix(ctype, "audio/") || len(body) < 100 {
		t.Fatalf("GET %s with the browser's cookie: %d %q, %d bytes", src, st, ctype, len(body))
	}
	if s.authOn {
		if st, _, _ := s.getWithCookie(strings.TrimPrefix(src, s.base), ""); st != 401 {
			t.Errorf("GET %s without a cookie: %d, want 401", src, st)
		}
	}
}

// TestUserTriesIt: a normal user logs in on /, speaks a sentence, follows
// the job live, plays and downloads the audio, sees it in the recent jobs,
// then logs out.
func TestUserTriesIt(t *testing.T) {
	s := startService(t, true)
	admin := s.adminToken()
	email, pass := "user@example.com", randPassword()
	s.createUser(admin, email, pass, "user")

	tb := newTab(t, s.base)
	tb.open("/")
	tb.visible("#login-form")
	if eval[bool](tb, `!document.querySelector('#app-view').hidden`) {
		t.Fatal("the app is shown before logging in")
	}
	tb.shot("login")

	// A wrong password is refused readably and stores nothing.
	tb.login(email, "not-the-password-1")
	tb.until("the log-in error", `!document.querySelector('#login-error').hidden`)
	if got := tb.text("#login-error"); !strings.Contains(got, "Wrong email or password") {
		t.Errorf("log-in error %q", got)
	}
	if eval[bool](tb, `localStorage.getItem('kokoro_token') !== null`) {
		t.Error("a token was stored after a failed log-in")
	}

	tb.login(email, pass)
	tb.visible("#tts-form")
	tb.until("the token to be stored", `!!localStorage.getItem('kokoro_token')`)
	if got := tb.text("#who"); !strings.Contains(got, email) {
		t.Errorf("header shows %q, want the user's email", got)
	}
	if eval[bool](tb, `!document.querySelector('#admin-link').hidden`) {
		t.Error("a normal user sees the Admin link")
	}
	tb.choose("#voice", "bf_emma")
	tb.choose("#format", "mp3")
	id := speak(t, tb, "Hello from the browser test, spoken by a test tone.")

	if via := eval[string](tb, `document.querySelector('#result').dataset.via`); via != "events" {
		t.Errorf("the page followed the job by %q, want the event stream (the session cookie opens it)", via)
	}
	src := checkPlayer(t, tb, "#player")
	if via := eval[string](tb, `document.querySelector('#player').dataset.via`); via != "url" {
		t.Errorf("the player loaded the audio by %q, want its URL with the session cookie", via)
	}
	checkAudioURL(t, s, tb, src)
	if href := eval[string](tb, `document.querySelector('#download').href`); href != src {
		t.Errorf("download link %q, want the audio %q", href, src)
	}
	if dl := eval[string](tb, `document.querySelector('#download').getAttribute('download')`); dl != id+".mp3" {
		t.Errorf("download name %q", dl)
	}

	// The browser's token is the user's: the job is theirs, as the API says.
	tok := eval[string](tb, `localStorage.getItem('kokoro_token')`)
	job := s.must(200, "GET", "/api/jobs/"+id, tok, nil)
	if job["status"] != "succeeded" || job["voice"] != "bf_emma" || job["format"] != "mp3" {
		t.Errorf("job as the API shows it: %v", job)
	}

	row := fmt.Sprintf(`#recent tr[data-job-id=%s]`, jsq(id))
	tb.until("the job in My recent jobs", fmt.Sprintf(`(() => { const r = document.querySelector(%q); return r && r.dataset.status === 'succeeded'; })()`, row))
	if got := tb.text(row); !strings.Contains(got, "Hello from the browser test") || !strings.Contains(got, "bf_emma") {
		t.Errorf("recent row %q", got)
	}
	tb.shot("succeeded")
	tb.narrow()
	tb.shot("succeeded-narrow")
	tb.wide()

	// An over-long text is refused with the API's message, shown readably.
	tb.do("filling a long text", setValueJS("#text", strings.Repeat("a", 20001)))
	tb.click("#submit")
	tb.until("the API's error", `!document.querySelector('#tts-error').hidden`)
	if got := tb.text("#tts-error"); !strings.Contains(got, "text: 20001 characters") || !strings.Contains(got, "20000") {
		t.Errorf("error for a too-long text: %q, want the API's message naming the limit", got)
	}
	if got := tb.text("#counter"); !strings.HasPrefix(got, "20,001 / 20,000") || !eval[bool](tb, `document.querySelector('#counter').classList.contains('over')`) {
		t.Errorf("counter %q, want it over the limit", got)
	}

	// Without the session cookie (only the stored token), the page falls
	// back to polling with the bearer token, and the player fetches the
	// audio with it.
	tb.dropSessionCookie()
	tb.do("clearing the text", setValueJS("#text", ""))
	second := speak(t, tb, "A second sentence, followed without the cookie.")
	if second == id {
		t.Fatal("the second submission shows the first job")
	}
	if via := eval[string](tb, `document.querySelector('#result').dataset.via`); via != "polling" {
		t.Errorf("without the cookie the page followed the job by %q, want polling", via)
	}
	checkPlayer(t, tb, "#player")
	if via := eval[string](tb, `document.querySelector('#player').dataset.via`); via != "bearer" {
		t.Errorf("without the cookie the player loaded the audio by %q, want a fetch with the bearer token", via)
	}

	// A token the server no longer accepts sends the page back to the
	// log-in form and is dropped.
	tb.do("spoiling the token", chromedp.Evaluate[chromedp.Void](`localStorage.setItem('kokoro_token', 'not-a-token')`))
	tb.open("/")
	tb.visible("#login-form")
	tb.until("the spoilt token to be dropped", `localStorage.getItem('kokoro_token') === null`)
	tb.login(email, pass)
	tb.visible("#tts-form")

	// Log out: the token and the cookie go, the form comes back.
	tb.click("#logout")
	tb.visible("#login-form")
	if eval[bool](tb, `localStorage.getItem('kokoro_token') !== null`) {
		t.Error("the token survived the log-out")
	}
	if c := tb.cookieHeader(); strings.Contains(c, "kokoro_session=") {
		t.Errorf("the session cookie survived the log-out: %q", c)
	}
	tb.open("/")
	tb.visible("#login-form")
}

// TestUserIsRefusedAdmin: a normal user's session cannot open the dashboard.
func TestUserIsRefusedAdmin(t *testing.T) {
	s := startService(t, true)
	admin := s.adminToken()
	email, pass := "user@example.com", randPassword()
	s.createUser(admin, email, pass, "user")

	tb := newTab(t, s.base)
	tb.open("/")
	tb.login(email, pass)
	tb.visible("#tts-form")
	if st := tb.openResponse("/admin"); st != 403 {
		t.Errorf("GET /admin as a user: %d, want 403", st)
	}
	body := eval[string](tb, `document.body.innerText`)
	if !strings.Contains(strings.ToLower(body), "administrator") {
		t.Errorf("the refusal page does not say why: %q", body)
	}
	tb.shot("refused")
	// And the admin API refuses the user's token.
	tok := eval[string](tb, `localStorage.getItem('kokoro_token')`)
	if st, _ := s.call("GET", "/api/admin/overview", tok, nil); st != 403 {
		t.Errorf("GET /api/admin/overview as a user: %d, want 403", st)
	}
}

// TestOpenMode: with auth off the try-it page works with no log-in.
func TestOpenMode(t *testing.T) {
	s := startService(t, false)
	tb := newTab(t, s.base)
	tb.open("/")
	tb.visible("#tts-form")
	if eval[bool](tb, `!document.querySelector('#login-view').hidden || !document.querySelector('#logout').hidden`) {
		t.Error("open mode shows a log-in form or a log-out button")
	}
	id := speak(t, tb, "Open mode needs no log-in.")
	checkAudioURL(t, s, tb, checkPlayer(t, tb, "#player"))
	tb.until("the job in My recent jobs", fmt.Sprintf(`!!document.querySelector('#recent tr[data-job-id=%s]')`, jsq(id)))
	tb.shot("tryit")

	// Everyone is an administrator: the dashboard opens.
	tb.open("/admin")
	tb.until("the overview's queues", `document.querySelectorAll('#ov-queues tr[data-queue]').length > 0`)
	tb.shot("admin")
}
