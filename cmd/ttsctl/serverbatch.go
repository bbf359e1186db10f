package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// remoteBatch is what ttsctl reads of GET /api/batches/{id}.
type remoteBatch struct {
	ID       string `json:"id"`
	Status   string `json:"status"` // running, completed or canceled
	Total    int    `json:"total"`
	Finished int    `json:"finished"`
}

// archiveEntry is one item of a batch archive's manifest.json.
type archiveEntry struct {
	Key             string   `json:"key"`
	Text            string   `json:"text"`
	Voice           string   `json:"voice"`
	Speed           float64  `json:"speed"`
	Format          string   `json:"format"`
	JobID           string   `json:"job_id"`
	Status          string   `json:"status"`
	DurationSeconds *float64 `json:"duration_seconds"`
	File            string   `json:"file"`
	Error           string   `json:"error"`
}

// runServerSide is "ttsctl batch -server-side": the lesson goes to the
// server as one batch (POST /api/batches), ttsctl follows its progress and
// unpacks its archive into the folder. One request instead of one per item
// (and per poll), which matters for long lessons under a rate limit. The
// Idempotency-Key is the batch name and a hash of the items, so running the
// same command again collects the same batch, and a changed lesson is a new
// one.
func (b *batchConfig) runServerSide(ctx context.Context, a *app, items []item, wait time.Duration) int {
	if b.queue != "batch" {
		return a.fail(usageErrorf("-queue does not apply to -server-side: a batch's items run on the batch queue"))
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return a.fail(err)
	}
	type bodyItem struct {
		Key    string  `json:"key"`
		Text   string  `json:"text"`
		Voice  string  `json:"voice"`
		Speed  float64 `json:"speed"`
		Format string  `json:"format"`
	}
	var body struct {
		Items []bodyItem `json:"items"`
	}
	wants := map[string]manifestItem{}
	for _, it := range items {
		w := b.want(it)
		wants[w.Key] = w
		body.Items = append(body.Items, bodyItem{Key: w.Key, Text: w.Text, Voice: w.Voice, Speed: w.Speed, Format: w.Format})
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return a.fail(err)
	}
	sum := sha256.Sum256(raw)
	key := b.name + ":" + hex.EncodeToString(sum[:8])
	c, err := a.client()
	if err != nil {
		return a.fail(err)
	}
	var rb remoteBatch
	hdr, err := c.call(ctx, http.MethodPost, "/api/batches", raw,
		http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key}}, true, &rb)
	if err != nil {
		return a.fail(err)
	}
	again := ""
	if hdr.Get("Idempotent-Replayed") == "true" {
		again = ", submitted by an earlier run"
	}
	fmt.Fprintf(a.stderr, "ttsctl: batch %s (server batch %s): %d %s%s\n", b.name, rb.ID, rb.Total, plural(rb.Total, "item"), again)

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if wait > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(runCtx, wait, errWaitOver)
		defer cancel()
	}
	path := "/api/batches/" + url.PathEscape(rb.ID)
	pause, shown := 500*time.Millisecond, -1
	for rb.Status == "running" {
		if rb.Finished != shown && a.stderrTTY {
			fmt.Fprintf(a.stderr, "\rttsctl: %d of %d done", rb.Finished, rb.Total)
			shown = rb.Finished
		}
		if err := sleep(runCtx, pause); err != nil {
			break
		}
		if _, err := c.call(runCtx, http.MethodGet, path+"?limit=1", nil, nil, true, &rb); err != nil {
			if runCtx.Err() != nil {
				break
			}
			stop(errServerDown)
			break
		}
		pause = min(pause*3/2, 5*time.Second)
	}
	if shown >= 0 {
		fmt.Fprintln(a.stderr)
	}

	// The archive holds what is done so far, even of a batch still running.
	results, err := b.unpack(ctx, c, path+"/archive", wants)
	if err != nil {
		return a.fail(err)
	}
	m := &manifest{Batch: b.name, Server: c.base}
	if err := b.save(m, results); err != nil {
		return a.fail(err)
	}
	if rb.Status == "running" {
		// Stopped waiting: the items not done yet are left to the server.
		for i := range results {
			if results[i].Status == statusQueued || results[i].Status == statusRunning {
				results[i].err = runCtx.Err()
				results[i].Error = noteUnfinished
			}
		}
	}
	return b.report(ctx, runCtx, a, results)
}

// unpack downloads the batch archive at path and writes each item's audio
// into the folder as <key>.<format>, atomically; it returns the items as
// the archive's manifest describes them, in the lesson's order.
func (b *batchConfig) unpack(ctx context.Context, c *client, path string, wants map[string]manifestItem) ([]itemResult, error) {
	tmp, err := os.CreateTemp(b.dir, ".batch-*.zip")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := c.get(ctx, path, tmp)
	if err != nil {
		return nil, fmt.Errorf("downloading the batch archive: %w", err)
	}
	zr, err := zip.NewReader(tmp, size)
	if err != nil {
		return nil, fmt.Errorf("the batch archive is not a zip: %w", err)
	}
	files := map[string]*zip.File{}
	var entries []archiveEntry
	for _, f := range zr.File {
		if f.Name == manifestName {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			err = json.NewDecoder(rc).Decode(&entries)
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("the batch archive's manifest: %w", err)
			}
			continue
		}
		files[f.Name] = f
	}
	if len(entries) != len(wants) {
		return nil, fmt.Errorf("the batch archive lists %d items, the lesson has %d", len(entries), len(wants))
	}
	results := make([]itemResult, 0, len(entries))
	for _, e := range entries {
		want, ok := wants[e.Key]
		if !ok {
			return nil, fmt.Errorf("the batch archive lists an item %q the lesson does not have", e.Key)
		}
		r := itemResult{manifestItem: want}
		r.JobID, r.Status, r.Error = e.JobID, e.Status, e.Error
		if e.DurationSeconds != nil {
			r.DurationSeconds = *e.DurationSeconds
		}
		if e.Status == statusSucceeded {
			// Only the name ttsctl expects is written: an entry cannot
			// choose where it lands.
			f := files[fileName(&want)]
			if e.File != fileName(&want) || f == nil {
				return nil, fmt.Errorf("the batch archive has no audio %s for the succeeded item %q", fileName(&want), e.Key)
			}
			err := writeFileAtomic(filepath.Join(b.dir, fileName(&want)), func(w io.Writer) error {
				rc, err := f.Open()
				if err != nil {
					return err
				}
				defer rc.Close()
				_, err = io.Copy(w, rc)
				return err
			})
			if err != nil {
				return nil, err
			}
			r.File, r.Bytes = fileName(&want), int64(f.UncompressedSize64)
		} else if e.Status == statusFailed || e.Status == statusCanceled {
			r.err = &jobError{ID: e.JobID, Status: e.Status, Message: e.Error}
		}
		results = append(results, r)
	}
	return results, nil
}

// get writes the body of a GET of path to w (following a redirect to
// presigned storage) and returns its length. The transfer fails when it
// stalls for longer than the client's timeout (there is no bound on its
// total length, so long audio is never cut off); an interrupted transfer is
// not resumed here.
func (c *client) get(parent context.Context, path string, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	idle := time.AfterFunc(c.timeout, cancel)
	defer idle.Stop()
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return 0, err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, c.transportError(parent, ctx, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, readAPIError(res)
	}
	n, err := io.Copy(fileWriter{w}, &idleReader{r: res.Body, timer: idle, d: c.timeout})
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return n, we.err // the local destination's error, not the network's
		}
		return n, c.transportError(parent, ctx, err)
	}
	return n, nil
}
