package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// waitFor bounds every wait for the page; generous, since a wait only ends
// early on success (no timing is asserted).
const waitFor = 60 * time.Second

// tab is one Chromium tab with what the page logged.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu         sync.Mutex
	console    []string
	exceptions []string
}

// chromium finds the browser: fails under CI when it is missing, else skips.
func chromium(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("/usr/bin/chromium"); err == nil {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "chromium is not installed (apt-get install -y chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newTab starts a fresh headless Chromium (its own profile, so no cookies
// or storage carry over) and opens a tab on base.
func newTab(t *testing.T, base string) *tab {
	t.Helper()
	profile, err := os.MkdirTemp("", "kokoro-tts-chromium")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, // also mutes audio and hides scroll bars
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("lang", "en-US"), // the pages format numbers and times in the browser's locale
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser to exit
		os.RemoveAll(profile)
	})
	tb := &tab{t: t, ctx: ctx, base: base}
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("starting chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text)
			tb.mu.Lock()
			tb.console = append(tb.console, line)
			if m.IsException() {
				tb.exceptions = append(tb.exceptions, line)
			}
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if len(tb.exceptions) > 0 {
			t.Errorf("uncaught JavaScript exceptions:\n%s", strings.Join(tb.exceptions, "\n"))
		}
		if t.Failed() && len(tb.console) > 0 {
			t.Logf("--- browser console ---\n%s", strings.Join(tb.console, "\n"))
		}
	})
	return tb
}

// do runs actions with a bound, failing with the page's state.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", what, err, tb.state())
	}
}

// open navigates to a path of the service.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("opening "+path, chromedp.Navigate(tb.base+path))
}

// openResponse navigates and returns the HTTP status of the document.
func (tb *tab) openResponse(path string) int64 {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.NavigateResponse(tb.base+path))
	if err != nil {
		tb.t.Fatalf("opening %s: %v", path, err)
	}
	return res.Status
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v\n%s", expr, err, tb.state())
	}
	return v
}

// until waits for a JavaScript expression to become truthy. Errors while
// it is evaluated (a navigation, an element not there yet) are retried; an
// exception whose message starts with "FAIL:" ends the wait at once.
func (tb *tab) until(what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
			if strings.Contains(err.Error(), "FAIL:") {
				tb.t.Fatalf("waiting for %s: %v\n%s", what, err, tb.state())
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			tb.t.Fatalf("waiting for %s (%s): not true within %s (last error: %v)\n%s", what, expr, waitFor, last, tb.state())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// visible waits until the element matching a CSS selector is shown.
func (tb *tab) visible(sel string) {
	tb.t.Helper()
	tb.do("waiting for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("clicking "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// typeInto clears a field and types into it (real key events, so input
// listeners run).
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.do("typing into "+sel, chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = ''`, jsq(sel))),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

// choose sets a <select> and fires its change event.
func (tb *tab) choose(sel, value string) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value; })()`, sel, value)
	if got := eval[string](tb, js); got != value {
		tb.t.Fatalf("%s has no option %q", sel, value)
	}
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel))
}

// state describes the page for failure messages: address and visible
// errors and statuses.
func (tb *tab) state() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const shown = [...document.querySelectorAll('.error, .notice, [role=status], [data-status], h2')]
			.filter((e) => e.offsetParent !== null).map((e) => (e.id || e.tagName) + ': ' + e.textContent.trim().slice(0, 200));
		return location.href + '\n' + shown.join('\n');
	})()`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return "page: " + s
}

// cookieHeader returns the browser's cookies for the service as a Cookie
// header value.
func (tb *tab) cookieHeader() string {
	tb.t.Helper()
	res, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.base + "/"}})
	if err != nil {
		tb.t.Fatalf("reading cookies: %v", err)
	}
	var parts []string
	for _, c := range res.Cookies {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// dropSessionCookie deletes the session cookie, leaving the stored token:
// what the browser loads by itself (EventSource, <audio>) then gets 401.
func (tb *tab) dropSessionCookie() {
	tb.t.Helper()
	if _, err := chromedp.Call(tb.ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "kokoro_session", URL: tb.base + "/"}); err != nil {
		tb.t.Fatalf("deleting the session cookie: %v", err)
	}
	if c := tb.cookieHeader(); strings.Contains(c, "kokoro_session=") {
		tb.t.Fatalf("the session cookie is still there: %q", c)
	}
}

// login fills the log-in form of the try-it page.
func (tb *tab) login(email, password string) {
	tb.t.Helper()
	tb.visible("#login-form")
	tb.typeInto("#login-email", email)
	tb.typeInto("#login-password", password)
	tb.click("#login-submit")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifacts is where screenshots go: $BROWSER_ARTIFACTS, else
// internal/browser/artifacts (git-ignored).
func artifacts(t *testing.T) string {
	dir := os.Getenv("BROWSER_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot saves a full-page PNG of the tab as a test artefact.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitFor)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(artifacts(tb.t), unsafeName.ReplaceAllString(tb.t.Name(), "_")+"-"+name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Errorf("saving %s: %v", p, err)
		return
	}
	tb.t.Logf("screenshot: %s", p)
}

// narrow re-lays the page out at phone width (until wide is called).
func (tb *tab) narrow() {
	tb.do("narrow viewport", chromedp.EmulateViewport(390, 844))
}

func (tb *tab) wide() {
	tb.do("wide viewport", chromedp.EmulateViewport(1280, 900))
}

// jsq quotes a Go string as a JavaScript string literal.
func jsq(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// setValueJS sets a field's value at once and fires its input event (for
// long texts that would take long to type).
func setValueJS(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); })()`, jsq(sel), jsq(v)))
}

// route sets the page's hash (the dashboard's router follows it).
func (tb *tab) route(hash string) {
	tb.t.Helper()
	tb.do("going to "+hash, chromedp.Evaluate[chromedp.Void]("location.hash = "+jsq(hash)))
}

// confirm answers the dashboard's confirmation dialog with yes.
func (tb *tab) confirm() {
	tb.t.Helper()
	tb.until("the confirmation dialog", `document.querySelector('#confirm').open`)
	tb.click("#confirm-yes")
	tb.until("the dialog to close", `!document.querySelector('#confirm').open`)
}
