package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const sayHelp = `Submits TEXT (the arguments joined by spaces, or standard input with -),
waits for the job and downloads its audio to -o (default <job id>.<format>),
then prints the file's path. Ctrl-C cancels the job on the server.`

// runSay is "ttsctl say".
func runSay(ctx context.Context, a *app, args []string) int {
	fs := a.flagSet("say", "[flags] TEXT... | -", sayHelp)
	voice := fs.String("voice", "af_heart", "voice id or blend such as af_bella(2)+af_sky (ttsctl voices lists them)")
	speed := fs.Float64("speed", 1.0, "speaking speed, 0.5 to 2.0")
	format := fs.String("format", "mp3", "mp3, wav, opus, aac, flac or pcm")
	out := fs.String("o", "", "output file, - for standard output (default <job id>.<format>)")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the job; then it is canceled (0: no limit)")
	queue := fs.String("queue", "", "interactive (the server's default) or batch")
	idem := fs.String("idempotency-key", "", "Idempotency-Key to send: the same key returns the same job (default: a random one, so that retries are safe)")
	if code, done := parse(fs, args); done {
		return code
	}
	text, err := sayText(fs.Args(), a.stdin)
	if err != nil {
		fmt.Fprintln(a.stderr, "ttsctl: "+err.Error())
		fs.Usage()
		return exitUsage
	}
	if *wait < 0 {
		return a.fail(usageErrorf("-wait must not be negative"))
	}
	if *out != "" && *out != "-" {
		// Before the server does any work for a file that cannot be written.
		if fi, err := os.Stat(filepath.Dir(*out)); err != nil || !fi.IsDir() {
			return a.fail(usageErrorf("-o %s: the folder %s does not exist", *out, filepath.Dir(*out)))
		}
	}
	c, err := a.client()
	if err != nil {
		return a.fail(err)
	}
	key := *idem
	if key == "" {
		key = newIdempotencyKey()
	}
	j, _, err := c.submit(ctx, ttsRequest{Text: text, Voice: *voice, Speed: speed, Format: *format, Queue: *queue}, key)
	if err != nil {
		return a.fail(err)
	}
	line := &statusLine{w: a.stderr, on: a.stderrTTY}
	start := time.Now()

	waitCtx, cancelWait := ctx, context.CancelFunc(func() {})
	if *wait > 0 {
		waitCtx, cancelWait = context.WithTimeout(ctx, *wait)
	}
	defer cancelWait()
	id := j.ID
	j, err = c.wait(waitCtx, id, func(j *job) {
		line.set("job %s: %s %s", j.ID, j.Status, time.Since(start).Round(100*time.Millisecond))
	})
	line.clear()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			a.cancelAbandoned(ctx, c, id, "interrupted")
			return exitInterrupted
		case waitCtx.Err() != nil:
			a.cancelAbandoned(ctx, c, id, fmt.Sprintf("not finished after %s (-wait)", *wait))
			return exitJob
		}
		// The job goes on without us.
		return a.fail(err, "job "+id+" (still on the server: ttsctl status "+id+")")
	}
	if j.Status != statusSucceeded {
		return a.fail(&jobError{ID: j.ID, Status: j.Status, Message: j.Error})
	}

	line.set("job %s: downloading", j.ID)
	path, err := saveAudio(ctx, c, j, *out, a.stdout)
	line.clear()
	if err != nil {
		return a.fail(err, "job "+j.ID)
	}
	if *out != "-" {
		fmt.Fprintln(a.stdout, path)
	}
	return exitOK
}

// sayText returns the text to speak: the arguments joined by spaces, or
// standard input when the only argument is "-".
func sayText(args []string, stdin io.Reader) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no text: give it as arguments, or - to read standard input")
	}
	text := strings.Join(args, " ")
	if len(args) == 1 && args[0] == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return "", fmt.Errorf("reading standard input: %w", err)
		}
		text = string(b)
	}
	if strings.TrimSpace(text) == "" {
		return "", errors.New("the text is empty")
	}
	return text, nil
}

// cancelAbandoned cancels a job ttsctl stopped waiting for, so that no work
// is done for nobody, and says what happened.
func (a *app) cancelAbandoned(ctx context.Context, c *client, id, why string) {
	// ctx may be over (Ctrl-C): the cancel gets its own short deadline.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	j, err := c.cancel(cctx, id)
	var ae *apiError
	switch {
	case err == nil && j.Status == statusCanceled:
		fmt.Fprintf(a.stderr, "ttsctl: %s; canceled job %s\n", why, id)
	case err == nil:
		fmt.Fprintf(a.stderr, "ttsctl: %s; asked job %s to stop (it is %s)\n", why, id, j.Status)
	case errors.As(err, &ae) && ae.Code == "conflict":
		fmt.Fprintf(a.stderr, "ttsctl: %s; job %s finished meanwhile (ttsctl status %s)\n", why, id, id)
	default:
		fmt.Fprintf(a.stderr, "ttsctl: %s; could not cancel job %s: %v\n", why, id, err)
	}
}

// saveAudio downloads a succeeded job's audio to out ("-": stdout, "":
// <id>.<format> in the working directory) through a temporary file, so that
// an interrupted download leaves no partial file behind, and returns the
// path.
func saveAudio(ctx context.Context, c *client, j *job, out string, stdout io.Writer) (string, error) {
	if out == "-" {
		n, err := c.download(ctx, j.ID, stdout)
		if err == nil {
			err = checkSize(j, n)
		}
		return "", err
	}
	if out == "" {
		out = j.ID + "." + j.Format
	}
	return out, writeFileAtomic(out, func(w io.Writer) error {
		n, err := c.download(ctx, j.ID, w)
		if err == nil {
			err = checkSize(j, n)
		}
		return err
	})
}

// checkSize catches a download cut short without an error (a proxy that
// closed the connection early).
func checkSize(j *job, n int64) error {
	if j.Audio != nil && j.Audio.Bytes > 0 && n != j.Audio.Bytes {
		return fmt.Errorf("downloaded %d bytes, the job's audio has %d", n, j.Audio.Bytes)
	}
	return nil
}

// writeFileAtomic writes path through a temporary file in the same
// directory and renames it into place once write succeeded; otherwise the
// temporary file is removed and path is left as it was.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.part")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; audio and manifests are ordinary files.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
