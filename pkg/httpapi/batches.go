package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Batches is the batch side of the application service (jobs.Service
// implements it). The batch routes exist only when Config.Jobs implements it.
type Batches interface {
	SubmitBatch(ctx context.Context, req tts.BatchRequest, idempotencyKey string) (*tts.Batch, bool, error)
	GetBatch(ctx context.Context, id string) (*tts.Batch, error)
	BatchItems(ctx context.Context, id, cursor string, limit int) ([]tts.BatchItem, string, error)
	CancelBatch(ctx context.Context, id string) (*tts.Batch, error)
	WriteBatchArchive(ctx context.Context, id string, w io.Writer) error
}

// defaultBatchBodyBytes bounds a batch body by default: 10,000 items of a few hundred
// characters each. The global BodyLimit (Config.MaxBodyBytes) applies first
// until the server exempts /api/batches from it.
const defaultBatchBodyBytes = 32 << 20

// batchPoll is how often a batch event stream reads the batch's counts.
const batchPoll = 500 * time.Millisecond

// routesBatches registers the batch endpoints under /api.
func (s *Server) routesBatches(g *echo.Group) {
	b, ok := s.cfg.Jobs.(Batches)
	if !ok {
		return
	}
	h := &batchHandlers{s: s, b: b}
	g.POST("/batches", h.submit)
	g.GET("/batches/:id", h.get)
	g.DELETE("/batches/:id", h.cancel)
	g.GET("/batches/:id/events", h.events)
	g.GET("/batches/:id/archive", h.archive)
}

type batchHandlers struct {
	s *Server
	b Batches
}

// batchBody is the JSON body of POST /api/batches.
type batchBody struct {
	Items       []batchItemBody `json:"items"`
	Voice       string          `json:"voice"`
	Speed       *float64        `json:"speed"`
	Format      string          `json:"format"`
	CallbackURL string          `json:"callback_url"`
}

type batchItemBody struct {
	Key    string   `json:"key"`
	Text   string   `json:"text"`
	Voice  string   `json:"voice"`
	Speed  *float64 `json:"speed"`
	Format string   `json:"format"`
}

func (h *batchHandlers) submit(c *echo.Context) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, h.s.cfg.MaxBatchBodyBytes)
	var body batchBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req := tts.BatchRequest{Voice: body.Voice, Speed: body.Speed, Format: body.Format, CallbackURL: body.CallbackURL,
		Items: make([]tts.BatchItemRequest, len(body.Items))}
	for i, it := range body.Items {
		req.Items[i] = tts.BatchItemRequest{Key: it.Key, Text: it.Text, Voice: it.Voice, Speed: it.Speed, Format: it.Format}
	}
	chars := 0
	for _, it := range req.Items {
		chars += utf8.RuneCountInString(it.Text)
	}
	refund, err := h.s.charge(r.Context(), chars)
	if err != nil {
		return err
	}
	batch, created, err := h.b.SubmitBatch(r.Context(), req, r.Header.Get("Idempotency-Key"))
	if err != nil || !created {
		refund()
	}
	var be *tts.BatchError
	if errors.As(err, &be) {
		return h.itemErrors(c, be)
	} else if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, batchPath(batch.ID))
	if !created {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusAccepted, batchViewOf(batch))
}

// itemErrors writes the usual error body with the item errors listed as
// well, so that a client can point at each bad item.
func (h *batchHandlers) itemErrors(c *echo.Context, be *tts.BatchError) error {
	type itemError struct {
		Index   int    `json:"index"`
		Key     string `json:"key"`
		Message string `json:"message"`
	}
	type detail struct {
		errorDetail
		Items []itemError `json:"items"`
		Total int         `json:"total"`
	}
	d := detail{errorDetail: errorDetail{Code: tts.EINVALID, Message: tts.ErrorMessage(be),
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}, Total: be.Total}
	for _, it := range be.Items {
		d.Items = append(d.Items, itemError{Index: it.Index, Key: it.Key, Message: it.Message})
	}
	return c.JSON(statusOf(tts.EINVALID), map[string]any{"error": d})
}

func (h *batchHandlers) get(c *echo.Context) error {
	ctx := c.Request().Context()
	limit := 0
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return tts.Errorf(tts.EINVALID, "limit: must be a whole number from 1 to 1000")
		}
		limit = n
	}
	batch, err := h.b.GetBatch(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	items, next, err := h.b.BatchItems(ctx, batch.ID, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	v := batchViewOf(batch)
	v.Items = make([]batchItemView, len(items))
	for i, it := range items {
		v.Items[i] = batchItemViewOf(it)
	}
	v.NextCursor = next
	return c.JSON(http.StatusOK, v)
}

func (h *batchHandlers) cancel(c *echo.Context) error {
	batch, err := h.b.CancelBatch(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, batchViewOf(batch))
}

// archive streams a zip of the batch: each succeeded item's audio as
// <key>.<ext> and manifest.json (see jobs.Service.WriteBatchArchive). It
// works while the batch runs and then holds what is done so far.
func (h *batchHandlers) archive(c *echo.Context) error {
	ctx := c.Request().Context()
	batch, err := h.b.GetBatch(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	w := c.Response()
	hd := w.Header()
	hd.Set(echo.HeaderContentType, "application/zip")
	hd.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="batch-%s.zip"`, batch.ID))
	hd.Set("Cache-Control", "no-store") // a running batch's archive grows
	w.WriteHeader(http.StatusOK)
	if err := h.b.WriteBatchArchive(ctx, batch.ID, w); err != nil {
		if ctx.Err() != nil {
			return nil // the client left
		}
		h.s.cfg.Logger.Error("batch archive cut short", "batch_id", batch.ID,
			"request_id", w.Header().Get(echo.HeaderXRequestID), "err", err)
		// Break the connection so that the client cannot take the
		// truncated archive for a whole one.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// batchEvent is the data of a batch event.
type batchEvent struct {
	Type     string         `json:"type"` // "progress" or "completed"
	BatchID  string         `json:"batch_id"`
	Status   string         `json:"status"`
	Total    int            `json:"total"`
	Finished int            `json:"finished"`
	Progress float64        `json:"progress"`
	Counts   map[string]int `json:"counts"`
	Time     time.Time      `json:"time"`
}

// events streams a batch's progress as Server-Sent Events: a "progress"
// event whenever its counts change (read every batchPoll), then one
// "completed" event with the final counts once every item is terminal,
// after which the stream ends. An event's id names its counts; a client
// reconnecting with Last-Event-ID gets the next change (or the completed
// event), not the state it has seen. Idle streams get a comment line every
// heartbeat.
func (h *batchHandlers) events(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	batch, err := h.b.GetBatch(ctx, id)
	if err != nil {
		return err
	}
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("last_event_id")
	}
	w := c.Response()
	hd := w.Header()
	hd.Set(echo.HeaderContentType, "text/event-stream")
	hd.Set("Cache-Control", "no-cache, no-transform")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	flush(w)

	tick := time.NewTicker(batchPoll)
	defer tick.Stop()
	quiet := time.Now()
	for {
		eid := countsID(batch)
		switch {
		case batch.Done():
			writeBatchEvent(w, eid, "completed", batch)
			return nil
		case eid != last:
			writeBatchEvent(w, eid, "progress", batch)
			last, quiet = eid, time.Now()
		case time.Since(quiet) >= heartbeat:
			fmt.Fprintf(w, ": heartbeat\n\n")
			flush(w)
			quiet = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if batch, err = h.b.GetBatch(ctx, id); err != nil {
			if ctx.Err() == nil {
				h.s.cfg.Logger.Warn("batch event stream read failed", "batch_id", id, "err", err)
				writeBatchEvent(w, "", "error", nil)
			}
			return nil
		}
	}
}

// countsID is a batch event's id: the counts it reports, queued, running,
// succeeded, failed, canceled.
func countsID(b *tts.Batch) string {
	n := b.Counts
	return fmt.Sprintf("%d.%d.%d.%d.%d", n[tts.StatusQueued], n[tts.StatusRunning], n[tts.StatusSucceeded],
		n[tts.StatusFailed], n[tts.StatusCanceled])
}

func writeBatchEvent(w http.ResponseWriter, id, typ string, b *tts.Batch) {
	var data []byte
	if b == nil {
		data, _ = json.Marshal(map[string]string{"type": typ, "error": "batch progress is unavailable; reconnect to resume"})
	} else {
		v := batchViewOf(b)
		data, _ = json.Marshal(batchEvent{Type: typ, BatchID: b.ID, Status: v.Status, Total: v.Total, Finished: v.Finished,
			Progress: v.Progress, Counts: v.Counts, Time: time.Now().UTC()})
	}
	if id != "" {
		fmt.Fprintf(w, "id: %s\n", id)
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
	flush(w)
}

// batchView is a batch as the API shows it.
type batchView struct {
	ID              string          `json:"id"`
	Status          string          `json:"status"` // running, completed or canceled
	Total           int             `json:"total"`
	Finished        int             `json:"finished"`
	Progress        float64         `json:"progress"` // finished / total
	Counts          map[string]int  `json:"counts"`
	Defaults        batchDefaults   `json:"defaults"`
	CallbackURL     string          `json:"callback_url,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	Items           []batchItemView `json:"items,omitempty"`
	NextCursor      string          `json:"next_cursor,omitempty"`
	Links           batchLinks      `json:"links"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
}

type batchDefaults struct {
	Voice  string  `json:"voice"`
	Speed  float64 `json:"speed"`
	Format string  `json:"format"`
}

type batchLinks struct {
	Self    string `json:"self"`
	Events  string `json:"events"`
	Archive string `json:"archive"`
}

type batchItemView struct {
	Key    string     `json:"key"`
	JobID  string     `json:"job_id"`
	Status string     `json:"status"`
	Error  string     `json:"error,omitempty"`
	Audio  *audioView `json:"audio,omitempty"`
}

func batchPath(id string) string { return "/api/batches/" + id }

func batchViewOf(b *tts.Batch) batchView {
	v := batchView{
		ID: b.ID, Status: string(b.State()), Total: b.Items, Finished: b.Finished(), Counts: map[string]int{},
		Defaults:    batchDefaults{Voice: b.Voice, Speed: b.Speed, Format: string(b.Format)},
		CallbackURL: b.CallbackURL, CreatedAt: b.CreatedAt.UTC(), UpdatedAt: b.UpdatedAt.UTC(),
		Links:           batchLinks{Self: batchPath(b.ID), Events: batchPath(b.ID) + "/events", Archive: batchPath(b.ID) + "/archive"},
		CancelRequested: b.Status == tts.BatchCanceled && !b.Done(),
	}
	for st, n := range b.Counts {
		v.Counts[string(st)] = n
	}
	if b.Items > 0 {
		v.Progress = float64(v.Finished) / float64(b.Items)
	}
	return v
}

func batchItemViewOf(it tts.BatchItem) batchItemView {
	j := it.Job
	v := batchItemView{Key: it.Key, JobID: j.ID, Status: string(j.Status), Error: j.Error}
	if j.Status == tts.StatusSucceeded && j.Audio != nil {
		v.Audio = &audioView{URL: jobPath(j.ID) + "/audio", ContentType: j.Audio.ContentType, Bytes: j.Audio.Bytes,
			DurationSeconds: j.Audio.DurationSeconds}
	}
	return v
}
