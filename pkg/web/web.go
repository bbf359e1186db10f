// Package web is the service's browser front end: the "try it" page at / and
// the operator dashboard at /admin. The files are plain HTML, one style
// sheet and vanilla ES modules embedded in the binary: no CDN, no build
// step, nothing to download but the few kilobytes the pages use.
//
// The package knows nothing about authentication. The pages call the JSON
// API (which enforces it) and the caller mounts Handler behind whatever gate
// /admin needs.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// FS returns the front end's files: index.html, admin.html and assets/...
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded above: cannot happen
	}
	return sub
}

// contentTypes covers every extension the front end uses, so the answer
// does not depend on the host's mime.types.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

func contentType(name string) string {
	ext := path.Ext(name)
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// pageCSP is the Content-Security-Policy of the two pages: their own scripts
// and styles only. Media may come from elsewhere because audio on S3 storage
// is answered with a redirect to a presigned URL; blob: is the player's
// fallback when it must fetch the audio itself with the bearer token.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob: https: http:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// file is one embedded file ready to serve.
type file struct {
	name  string
	body  []byte
	etag  string
	ctype string
}

// Handler serves the front end:
//
//	/ and /index.html      the try-it page
//	/admin and /admin/     the operator dashboard
//	/assets/...            style sheet and scripts (cached for an hour)
//
// and 404 for anything else. Only GET and HEAD are allowed.
func Handler() http.Handler {
	files := map[string]*file{}
	root := FS()
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[p] = &file{name: p, body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: contentType(p)}
		return nil
	})
	if err != nil {
		panic(err) // embedded files are always readable
	}
	return &handler{files: files}
}

type handler struct {
	files map[string]*file
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var (
		f    *file
		page bool
	)
	switch {
	case p == "/" || p == "/index.html":
		f, page = h.files["index.html"], true
	case p == "/admin" || p == "/admin/":
		f, page = h.files["admin.html"], true
	case strings.HasPrefix(p, "/assets/"):
		// Only exact names of embedded files: no directory listings, no
		// path games (the map has no "..", no "//", no trailing slash).
		f = h.files[strings.TrimPrefix(p, "/")]
		if f == nil || !strings.HasPrefix(f.name, "assets/") {
			f = nil
		}
	}
	if f == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", f.etag)
	if page {
		// Pages are small and name the assets: always revalidate, so a
		// deploy shows at once (the ETag makes that a 304).
		hd.Set("Cache-Control", "no-cache")
		hd.Set("Content-Security-Policy", pageCSP)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
	} else {
		hd.Set("Cache-Control", "public, max-age=3600")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
