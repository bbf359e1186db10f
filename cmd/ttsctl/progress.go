package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// statusLine is one line of stderr redrawn in place on a terminal. When
// the stream is not a terminal it prints nothing: scripts get quiet
// stderr.
type statusLine struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	shown bool
}

// set replaces the line's text.
func (s *statusLine) set(format string, args ...any) {
	if !s.on {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// \r and "erase to end of line": the new text may be shorter.
	fmt.Fprintf(s.w, "\r\033[K"+format, args...)
	s.shown = true
}

// clear removes the line, so that what comes next starts on a clean line.
func (s *statusLine) clear() {
	if !s.on {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown {
		fmt.Fprint(s.w, "\r\033[K")
		s.shown = false
	}
}

// batchProgress reports a batch's progress: a bar redrawn in place on a
// terminal, a plain line per finished item otherwise. It is used from one
// goroutine.
type batchProgress struct {
	w     io.Writer
	tty   bool
	total int

	done, ok, failed, skipped, running int
	lastDraw                           time.Time
}

// started notes an item handed to the server.
func (p *batchProgress) started() {
	p.running++
	p.draw(false)
}

// finished notes an item's outcome; msg is printed on its own line (on a
// terminal above the bar) when not empty, and always without a terminal.
func (p *batchProgress) finished(r *itemResult, wasRunning bool) {
	if wasRunning {
		p.running--
	}
	p.done++
	line := ""
	switch {
	case r.ok():
		p.ok++
		line = fmt.Sprintf("%s: %s (%.1f s)", r.Key, r.File, r.DurationSeconds)
	case r.unfinished() && r.JobID == "":
		line = r.Key + ": not submitted"
	case r.unfinished():
		line = r.Key + ": " + r.Status + ", left on the server (job " + r.JobID + ")"
	default:
		p.failed++
		line = r.Key + ": " + r.Status
		if r.Error != "" {
			line += ": " + r.Error
		}
	}
	if p.tty {
		// Only failures are worth a line of their own on a terminal.
		if !r.ok() && !r.unfinished() {
			fmt.Fprintf(p.w, "\r\033[K%s\n", line)
		}
		p.draw(true)
		return
	}
	fmt.Fprintf(p.w, "[%*d/%d] %s\n", len(fmt.Sprint(p.total)), p.done, p.total, line)
}

// draw redraws the bar, at most ten times a second unless forced.
func (p *batchProgress) draw(force bool) {
	if !p.tty || (!force && time.Since(p.lastDraw) < 100*time.Millisecond) {
		return
	}
	p.lastDraw = time.Now()
	fmt.Fprintf(p.w, "\r\033[K%s", p.bar())
}

// bar renders "[#####.....] 12/30  ok 10  failed 1  in flight 4".
func (p *batchProgress) bar() string {
	const width = 30
	n := 0
	if p.total > 0 {
		n = p.done * width / p.total
	}
	s := fmt.Sprintf("[%s%s] %d/%d  ok %d", strings.Repeat("#", n), strings.Repeat(".", width-n), p.done, p.total, p.ok)
	if p.skipped > 0 {
		s += fmt.Sprintf(" (%d already there)", p.skipped)
	}
	if p.failed > 0 {
		s += fmt.Sprintf("  failed %d", p.failed)
	}
	if p.running > 0 {
		s += fmt.Sprintf("  in flight %d", p.running)
	}
	return s
}

// end clears the bar.
func (p *batchProgress) end() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
