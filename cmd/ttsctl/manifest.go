package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// manifestName is the manifest's file name in a batch's output folder.
const manifestName = "manifest.json"

// Item states of the manifest besides the job states: pending (never
// submitted, e.g. after Ctrl-C) and rejected (the server refused the
// request; error says why).
const (
	statusPending  = "pending"
	statusRejected = "rejected"
)

// manifest describes a batch's output folder: what each item asked for,
// its job and where its audio is. It is rewritten as the batch goes, so
// that a re-run knows which files are complete.
type manifest struct {
	Batch     string         `json:"batch"`  // the batch name, the prefix of the Idempotency-Keys
	Server    string         `json:"server"` // where the jobs are
	UpdatedAt time.Time      `json:"updated_at"`
	Items     []manifestItem `json:"items"` // in the lesson's order
}

// manifestItem is one item of the manifest.
type manifestItem struct {
	Key             string  `json:"key"`
	Text            string  `json:"text"`
	Voice           string  `json:"voice"`
	Speed           float64 `json:"speed"`
	Format          string  `json:"format"`
	JobID           string  `json:"job_id"`
	Status          string  `json:"status"` // a job state, pending or rejected
	DurationSeconds float64 `json:"duration_seconds"`
	File            string  `json:"file"` // relative to the folder; set once the audio is there
	Error           string  `json:"error"`
	// Bytes is the audio's size as the job reports it: a file of another
	// size is incomplete.
	Bytes          int64  `json:"bytes"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// sameRequest reports whether m was made for the same request as want.
func (m *manifestItem) sameRequest(want *manifestItem) bool {
	return m.Key == want.Key && m.Text == want.Text && m.Voice == want.Voice && m.Speed == want.Speed && m.Format == want.Format
}

// complete reports whether m is want's finished item and its file is in
// dir with the size the job reported: such an item needs nothing from the
// server.
func (m *manifestItem) complete(want *manifestItem, dir string) bool {
	if !m.sameRequest(want) || m.Status != statusSucceeded || m.File != fileName(want) || m.Bytes <= 0 {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, m.File))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == m.Bytes
}

// readManifest reads dir's manifest; a folder without one gives nil.
func readManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, manifestName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, usageErrorf("%s is not a ttsctl manifest (%v): move it away to start afresh", path, err)
	}
	return &m, nil
}

// writeManifest replaces dir's manifest atomically.
func writeManifest(dir string, m *manifest) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return err
	}
	err := writeFileAtomic(filepath.Join(dir, manifestName), func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	})
	if err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	return nil
}
