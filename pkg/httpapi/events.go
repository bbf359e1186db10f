package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/events"
)

// heartbeat is how often an idle event stream sends a comment line, so that
// proxies keep it open; the job's row is read at the same pace.
const heartbeat = 15 * time.Second

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// jobEvents streams a job's events as Server-Sent Events: queued, running
// (with progress 0-1 by chunk), then one terminal event (succeeded with the
// audio link, failed with the reason, canceled), after which the stream
// ends. Each event carries its id; a reconnect with Last-Event-ID resumes
// after it, or replays the terminal event.
func (s *Server) jobEvents(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	job, err := s.cfg.Jobs.Get(ctx, id)
	if err != nil {
		return err
	}
	after := c.Request().Header.Get("Last-Event-ID")
	if after == "" {
		after = c.QueryParam("last_event_id")
	}
	if !streamID.MatchString(after) {
		after = "0" // no (usable) id: replay from the start
	}
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	flush(w)

	block := time.Duration(-1) // the first read does not wait
	for {
		evs, err := s.cfg.Jobs.Events(ctx, id, after, block)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// The bus is down: say so; the client reconnects and resumes.
			s.cfg.Logger.Warn("event stream read failed", "job_id", id, "err", err)
			writeEvent(w, events.Event{Type: "error", JobID: id, Error: "events are unavailable; reconnect to resume", Time: time.Now().UTC()})
			return nil
		}
		for _, e := range evs {
			writeEvent(w, e)
			after = e.ID
			if events.Terminal(e.Type) {
				return nil
			}
		}
		if len(evs) == 0 {
			// Nothing new: the row is the truth if the terminal event was
			// lost or has expired.
			if job, err = s.cfg.Jobs.Get(ctx, id); err != nil {
				return nil
			}
			if job.Status.Terminal() {
				writeEvent(w, events.FromJob(job))
				return nil
			}
			if block >= 0 {
				fmt.Fprintf(w, ": heartbeat\n\n")
				flush(w)
			}
		}
		block = heartbeat
	}
}

func writeEvent(w http.ResponseWriter, e events.Event) {
	b, _ := json.Marshal(e)
	if e.ID != "" {
		fmt.Fprintf(w, "id: %s\n", e.ID)
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
	flush(w)
}

// flush sends what an event stream has written so far to the client. An
// error means the client has gone: the stream notices through the request's
// context.
func flush(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }
