package main

import (
	"net/http"

	"github.com/kokorotts/kokoro-tts/pkg/web"
)

// webHandler serves the browser page and the admin dashboard (pkg/web).
func webHandler() http.Handler { return web.Handler() }
