package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

const batchHelp = `Synthesises every item of a lesson file into -out DIR as <key>.<format> and
writes DIR/manifest.json (key, text, voice, speed, format, job_id, status,
duration_seconds, file, error for each item).

Lesson files (by extension, or -input-format):
  .txt   one item per non-blank line; the key is the line number (001, 002, ...)
  .csv   a header row, then key,text[,voice,speed,format] (empty cells: the flags)
  .json  [{"key":"intro","text":"...","voice":"bf_emma","speed":0.9,"format":"wav"}, ...]
Keys name files: letters, digits, '.', '_' and '-', starting with a letter or digit.

Each item is submitted with Idempotency-Key <name>:<key>, so running the same
command again never synthesises an item twice: finished items whose file is
complete are skipped without asking the server, and jobs still running are
collected. An item whose text, voice, speed or format changed gets a key of
its own (<name>:<key>:<hash>) and new audio. Ctrl-C stops waiting and leaves
the submitted jobs to finish on the server; run the command again to collect
them.

With -server-side the lesson goes to the server as one batch (POST
/api/batches, Idempotency-Key <name>:<hash of the items>): ttsctl follows
its progress and unpacks its zip archive into the folder. Running the same
command again collects the same batch; a changed lesson is a new batch.`

// batchConfig is what a batch was asked to do.
type batchConfig struct {
	name     string // prefix of the Idempotency-Keys
	dir      string // output folder
	parallel int
	voice    string
	speed    float64
	format   string
	queue    string
}

// itemResult is an item's outcome as the manifest records it.
type itemResult struct {
	manifestItem
	// Skipped is set when the item was complete from an earlier run and
	// the server was not asked.
	Skipped bool
	// err is why the item did not succeed; it decides the exit code.
	err error
}

// ok reports whether the item's audio is in the folder.
func (r *itemResult) ok() bool {
	return r.Skipped || (r.Status == statusSucceeded && r.File != "" && r.err == nil)
}

// unfinished reports whether the batch stopped (Ctrl-C, -wait, the server
// gone) before the item got an outcome.
func (r *itemResult) unfinished() bool {
	return !r.ok() && (r.err == nil || errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded))
}

// noteUnfinished is the manifest's error of an item whose job was left
// running.
const noteUnfinished = "not finished when ttsctl stopped waiting; the job goes on on the server"

var (
	errWaitOver   = errors.New("-wait is over")
	errServerDown = errors.New("the server cannot be reached")
)

// runBatch is "ttsctl batch".
func runBatch(ctx context.Context, a *app, args []string) int {
	fs := a.flagSet("batch", "[flags] LESSON", batchHelp)
	out := fs.String("out", "", "output folder (default: the lesson file's name without extension)")
	name := fs.String("name", "", "batch name, the prefix of the Idempotency-Keys (default: the lesson file's name without extension)")
	parallel := fs.Int("parallel", 4, "items in flight at once (1 to 64)")
	voice := fs.String("voice", "af_heart", "voice of the items that name none")
	speed := fs.Float64("speed", 1.0, "speed of the items that give none (0.5 to 2.0)")
	format := fs.String("format", "mp3", "format of the items that name none: mp3, wav, opus, aac, flac or pcm")
	queue := fs.String("queue", "batch", "server queue: batch (after every interactive job) or interactive")
	inputFormat := fs.String("input-format", "", "txt, csv or json (default: from the file's extension); needed with - (standard input)")
	wait := fs.Duration("wait", 0, "stop waiting after this long, leaving unfinished jobs on the server (0: no limit)")
	serverSide := fs.Bool("server-side", false, "submit the lesson as one server-side batch (POST /api/batches) and unpack its archive: one request instead of one per item")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "ttsctl: batch needs one lesson file (or - for standard input)")
		fs.Usage()
		return exitUsage
	}
	cfg := batchConfig{name: *name, dir: *out, parallel: *parallel, voice: strings.TrimSpace(*voice), speed: *speed,
		format: strings.ToLower(strings.TrimSpace(*format)), queue: *queue}
	items, err := cfg.load(fs.Arg(0), *inputFormat, a.stdin)
	if err != nil {
		return a.fail(err)
	}
	if *wait < 0 {
		return a.fail(usageErrorf("-wait must not be negative"))
	}
	if *serverSide {
		return cfg.runServerSide(ctx, a, items, *wait)
	}
	return cfg.run(ctx, a, items, *wait)
}

// load reads and checks the lesson and completes the configuration's
// defaults from its name.
func (b *batchConfig) load(path, inputFormat string, stdin io.Reader) ([]item, error) {
	kind, err := lessonKind(path, inputFormat)
	if err != nil {
		return nil, err
	}
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if path == "-" {
		if inputFormat == "" || b.name == "" || b.dir == "" {
			return nil, usageErrorf("a lesson on standard input needs -input-format, -name and -out")
		}
	}
	if b.name == "" {
		b.name = stem
	}
	if b.dir == "" {
		b.dir = stem
	}
	if err := checkBatchName(b.name); err != nil {
		return nil, err
	}
	if b.parallel < 1 || b.parallel > 64 {
		return nil, usageErrorf("-parallel must be from 1 to 64, not %d", b.parallel)
	}
	if !formatChars.MatchString(b.format) {
		return nil, usageErrorf("-format %q is not a format name (mp3, wav, opus, aac, flac, pcm)", b.format)
	}
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		defer f.Close()
		r = f
	}
	items, err := parseLesson(r, kind)
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			return nil, &usageError{path + ": " + ue.msg}
		}
		return nil, err
	}
	return items, nil
}

// checkBatchName makes sure the name can prefix an Idempotency-Key header.
func checkBatchName(name string) error {
	if strings.TrimSpace(name) == "" {
		return usageErrorf("-name must not be empty")
	}
	if utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return usageErrorf("-name %q: at most 100 characters, none of them control characters", name)
	}
	return nil
}

// want returns what the manifest should say of it once it is done.
func (b *batchConfig) want(it item) manifestItem {
	m := manifestItem{Key: it.Key, Text: it.Text, Voice: it.Voice, Speed: b.speed, Format: it.Format, Status: statusPending}
	if m.Voice == "" {
		m.Voice = b.voice
	}
	if it.Speed != nil {
		m.Speed = *it.Speed
	}
	if m.Format == "" {
		m.Format = b.format
	}
	return m
}

// fileName is an item's audio file in the output folder.
func fileName(m *manifestItem) string { return m.Key + "." + m.Format }

// run submits the items that are not complete yet, downloads their audio
// and keeps the manifest, then returns the exit code.
func (b *batchConfig) run(ctx context.Context, a *app, items []item, wait time.Duration) int {
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return a.fail(err)
	}
	prev, err := readManifest(b.dir)
	if err != nil {
		return a.fail(err)
	}
	prevByKey := map[string]*manifestItem{}
	if prev != nil {
		for i := range prev.Items {
			prevByKey[prev.Items[i].Key] = &prev.Items[i]
		}
	}
	results := make([]itemResult, len(items))
	wants := make([]manifestItem, len(items))
	var todo []int
	for i, it := range items {
		want := b.want(it)
		wants[i] = want
		p := prevByKey[want.Key]
		if p != nil && p.complete(&want, b.dir) {
			results[i] = itemResult{manifestItem: *p, Skipped: true}
			continue
		}
		// Until the server says more, the manifest keeps what an earlier
		// run knew of the same request (its job, say).
		results[i] = itemResult{manifestItem: want}
		if p != nil && p.sameRequest(&want) {
			results[i].manifestItem = *p
		}
		todo = append(todo, i)
	}
	progress := &batchProgress{w: a.stderr, tty: a.stderrTTY, total: len(items)}
	if n := len(items) - len(todo); n > 0 {
		progress.done, progress.ok, progress.skipped = n, n, n
		progress.end()
		fmt.Fprintf(a.stderr, "ttsctl: %d of %d items already downloaded (%s)\n", n, len(items), filepath.Join(b.dir, manifestName))
	}
	m := &manifest{Batch: b.name}

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if len(todo) > 0 {
		c, err := a.client()
		if err != nil {
			return a.fail(err)
		}
		m.Server = c.base
		if wait > 0 {
			var cancel context.CancelFunc
			runCtx, cancel = context.WithTimeoutCause(runCtx, wait, errWaitOver)
			defer cancel()
		}
		b.process(runCtx, stop, c, wants, results, todo, prevByKey, progress, func() error { return b.save(m, results) })
	} else if prev != nil {
		m.Server = prev.Server
	}
	progress.end()
	if err := b.save(m, results); err != nil {
		return a.fail(err)
	}
	return b.report(ctx, runCtx, a, results)
}

// save writes the manifest from the results.
func (b *batchConfig) save(m *manifest, results []itemResult) error {
	m.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	m.Items = make([]manifestItem, len(results))
	for i := range results {
		m.Items[i] = results[i].manifestItem
	}
	return writeManifest(b.dir, m)
}

// process runs the items todo through the server with b.parallel workers,
// updating results, the progress and (every few seconds) the manifest. An
// item that cannot reach the server stops the batch through stop.
func (b *batchConfig) process(ctx context.Context, stop context.CancelCauseFunc, c *client, wants []manifestItem, results []itemResult, todo []int,
	prevByKey map[string]*manifestItem, progress *batchProgress, save func() error) {
	type event struct {
		idx     int
		started bool
		res     itemResult
	}
	events := make(chan event)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(b.parallel, len(todo)) {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue // left pending
				}
				events <- event{idx: i, started: true}
				r := b.item(ctx, c, wants[i], prevByKey[wants[i].Key])
				var ne *netError
				if errors.As(r.err, &ne) {
					stop(errServerDown)
				}
				events <- event{idx: i, res: r}
			}
		})
	}
	go func() {
		defer close(next)
		for _, i := range todo {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(events) }()

	lastSave := time.Now()
	for ev := range events {
		if ev.started {
			progress.started()
			continue
		}
		if ev.res.JobID != "" || !errors.Is(ev.res.err, ctx.Err()) {
			results[ev.idx] = ev.res
		} // else: stopped before the server said anything; keep what was known
		progress.finished(&ev.res, true)
		if time.Since(lastSave) > 2*time.Second {
			// Best effort: the final save reports errors.
			_ = save()
			lastSave = time.Now()
		}
	}
}

// item submits one item, waits for its job and downloads its audio.
func (b *batchConfig) item(ctx context.Context, c *client, want manifestItem, prev *manifestItem) itemResult {
	r := itemResult{manifestItem: want}
	speed := want.Speed
	req := ttsRequest{Text: want.Text, Voice: want.Voice, Speed: &speed, Format: want.Format, Queue: b.queue}
	base := b.name + ":" + want.Key
	key := base
	// An earlier run of this batch may have found that the item needs a
	// key of its own; a new -name starts afresh.
	if prev != nil && prev.sameRequest(&want) && strings.HasPrefix(prev.IdempotencyKey, base+":") {
		key = prev.IdempotencyKey
	}
	j, _, err := c.submit(ctx, req, key)
	if isConflict(err) && key == base {
		// The server keeps another request under this key: the item
		// changed since an earlier run. A key of its own keeps re-runs
		// of the changed item idempotent too.
		key = base + ":" + requestHash(req)
		j, _, err = c.submit(ctx, req, key)
	}
	if err != nil {
		r.err = err
		var ae *apiError
		if ctx.Err() == nil {
			r.Error = err.Error()
			if errors.As(err, &ae) && !transient(err) {
				r.Status = statusRejected
			}
		}
		return r
	}
	r.JobID, r.IdempotencyKey, r.Status = j.ID, key, j.Status
	if !j.terminal() {
		last, err := c.wait(ctx, j.ID, nil)
		if last != nil {
			j, r.Status = last, last.Status
		}
		if err != nil {
			r.err = err
			r.Error = err.Error()
			if ctx.Err() != nil {
				r.Error = noteUnfinished
			}
			return r
		}
	}
	if j.Status != statusSucceeded {
		r.Error = j.Error
		r.err = &jobError{ID: j.ID, Status: j.Status, Message: j.Error}
		return r
	}
	if j.Audio == nil || j.Audio.Bytes <= 0 {
		r.err = fmt.Errorf("job %s succeeded without audio", j.ID)
		r.Error = r.err.Error()
		return r
	}
	r.Bytes, r.DurationSeconds = j.Audio.Bytes, j.Audio.DurationSeconds
	file := fileName(&want)
	path := filepath.Join(b.dir, file)
	// The file is this job's when the manifest says so and the size is
	// right; otherwise it is downloaded again (a size alone proves nothing:
	// constant-bitrate audio of two texts may have the same).
	if !(prev != nil && prev.JobID == j.ID && prev.File == file && fileSize(path) == j.Audio.Bytes) {
		err := writeFileAtomic(path, func(w io.Writer) error {
			n, err := c.download(ctx, j.ID, w)
			if err == nil {
				err = checkSize(j, n)
			}
			return err
		})
		if err != nil {
			r.err = err
			r.Error = "downloading the audio: " + err.Error()
			if ctx.Err() != nil {
				r.Error = "ttsctl stopped before the audio was downloaded"
			}
			return r
		}
	}
	r.File = file
	return r
}

// fileSize returns the size of the regular file at path, or -1.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

// requestHash names a request in an Idempotency-Key.
func requestHash(req ttsRequest) string {
	b, _ := json.Marshal(req)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}

// report prints the summary and the manifest's path and returns the exit
// code.
func (b *batchConfig) report(ctx, runCtx context.Context, a *app, results []itemResult) int {
	var ok, skipped, failed, unfinished int
	code := exitOK
	for i := range results {
		r := &results[i]
		switch {
		case r.Skipped:
			ok++
			skipped++
		case r.ok():
			ok++
		case r.unfinished():
			unfinished++
		default:
			failed++
			code = worst(code, exitCode(r.err))
		}
	}
	manifestPath := filepath.Join(b.dir, manifestName)
	summary := fmt.Sprintf("%d %s: %d succeeded", len(results), plural(len(results), "item"), ok)
	if skipped > 0 {
		summary += fmt.Sprintf(" (%d already there)", skipped)
	}
	if failed > 0 {
		summary += fmt.Sprintf(", %d failed (see the manifest's error fields)", failed)
	}
	retryable := false
	for i := range results {
		retryable = retryable || results[i].Status == statusFailed || results[i].Status == statusCanceled
	}
	if unfinished > 0 {
		summary += fmt.Sprintf(", %d not finished", unfinished)
	}
	fmt.Fprintf(a.stderr, "ttsctl: batch %s: %s\n", b.name, summary)
	if retryable {
		// The same Idempotency-Keys would only replay the failed jobs.
		fmt.Fprintf(a.stderr, "ttsctl: to try failed or canceled items again, run the batch with a new -name (complete items are kept)\n")
	}
	fmt.Fprintln(a.stdout, manifestPath)
	cause := context.Cause(runCtx)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(a.stderr, "ttsctl: interrupted; jobs already submitted go on on the server: run the same command again to collect them")
		return exitInterrupted
	case errors.Is(cause, errWaitOver):
		fmt.Fprintln(a.stderr, "ttsctl: -wait is over; unfinished jobs go on on the server: run the same command again to collect them")
		return worst(code, exitJob)
	case errors.Is(cause, errServerDown):
		fmt.Fprintln(a.stderr, "ttsctl: stopped: the server cannot be reached; run the same command again later")
		return worst(code, exitServer)
	}
	return code
}

// isConflict reports a 409 conflict answer.
func isConflict(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Code == "conflict"
}

// plural returns word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
