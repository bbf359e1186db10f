package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// jobEvents streams a job's events (Server-Sent Events).
func (s *Server) jobEvents(c echo.Context) error {
	return tts.Errorf(tts.ENOTFOUND, "events are not available yet")
}
