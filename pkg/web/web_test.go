package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/web"
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerRoutes(t *testing.T) {
	h := web.Handler()
	index, _ := fs.ReadFile(web.FS(), "index.html")
	admin, _ := fs.ReadFile(web.FS(), "admin.html")
	for _, tc := range []struct {
		path, ctype, cache string
		want               []byte
	}{
		{"/", "text/html; charset=utf-8", "no-cache", index},
		{"/index.html", "text/html; charset=utf-8", "no-cache", index},
		{"/admin", "text/html; charset=utf-8", "no-cache", admin},
		{"/admin/", "text/html; charset=utf-8", "no-cache", admin},
		{"/assets/style.css", "text/css; charset=utf-8", "public, max-age=3600", nil},
		{"/assets/app.js", "text/javascript; charset=utf-8", "public, max-age=3600", nil},
		{"/assets/admin.js", "text/javascript; charset=utf-8", "public, max-age=3600", nil},
		{"/assets/api.js", "text/javascript; charset=utf-8", "public, max-age=3600", nil},
	} {
		res := get(t, h, http.MethodGet, tc.path)
		b := body(t, res)
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", tc.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", tc.path)
		}
		if tc.want != nil && b != string(tc.want) {
			t.Errorf("GET %s: body is not the embedded page", tc.path)
		}
		if tc.want != nil && !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, res.Header.Get("Content-Security-Policy"))
		}
		if len(b) == 0 {
			t.Errorf("GET %s: empty body", tc.path)
		}
	}
}

func TestHandlerNotFound(t *testing.T) {
	h := web.Handler()
	for _, p := range []string{
		"/nope", "/assets/", "/assets", "/assets/nope.js", "/assets/../index.html", "/assets//style.css",
		"/index.htm", "/admin.html", "/admin/x", "/admin/queues/", "/api/health", "/static/index.html",
		"/assets/style.css/", "/ASSETS/style.css",
	} {
		res := get(t, h, http.MethodGet, p)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
}

func TestHandlerMethodsAndRevalidation(t *testing.T) {
	h := web.Handler()
	res := get(t, h, http.MethodPost, "/")
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res = get(t, h, http.MethodHead, "/assets/style.css")
	if res.StatusCode != 200 || body(t, res) != "" || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, length %q", res.StatusCode, res.Header.Get("Content-Length"))
	}
	etag := get(t, h, http.MethodGet, "/assets/style.css").Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if res := get(t, h, http.MethodGet, "/assets/style.css", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", res.StatusCode)
	}
}

// refs finds the same-origin files a page or script names: src/href
// attributes and ES module imports.
var (
	attrRef   = regexp.MustCompile(`(?:src|href)="(/assets/[^"#?]+)"`)
	importRef = regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"]*?from\s+'(\./[^']+)'`)
)

func TestEveryReferencedAssetExists(t *testing.T) {
	root := web.FS()
	h := web.Handler()
	check := func(from, ref string) {
		res := get(t, h, http.MethodGet, ref)
		if res.StatusCode != 200 {
			t.Errorf("%s references %s, which answers %d", from, ref, res.StatusCode)
		}
	}
	n := 0
	for _, page := range []string{"index.html", "admin.html"} {
		b, err := fs.ReadFile(root, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range attrRef.FindAllStringSubmatch(string(b), -1) {
			check(page, m[1])
			n++
		}
		if regexp.MustCompile(`(?i)https?://|<script>|style="`).Match(b) {
			t.Errorf("%s loads something from elsewhere or has inline script/style (blocked by the CSP)", page)
		}
	}
	err := fs.WalkDir(root, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		for _, m := range importRef.FindAllStringSubmatch(string(b), -1) {
			check(p, "/assets/"+strings.TrimPrefix(m[1], "./"))
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Errorf("found only %d references: the patterns no longer match the pages", n)
	}
}
