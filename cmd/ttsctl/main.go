// Command ttsctl is the command-line client of the kokoro-tts HTTP API, for
// people and scripts: it submits text and downloads the audio (say), looks
// at and cancels jobs (status, jobs, cancel), lists voices (voices) and
// turns a lesson file into a folder of audio files with a manifest (batch).
//
// Exit codes: 0 success; 1 a job failed or was canceled (or, for batch, did
// not finish); 2 usage or a request the server rejected as invalid; 3 a
// server, network or local I/O error; 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK          = 0
	exitJob         = 1 // a job failed or was canceled
	exitUsage       = 2 // bad arguments, bad input, or a request the server called invalid
	exitServer      = 3 // server, network or local I/O error
	exitInterrupted = 130
)

// Defaults of the global flags.
const (
	defaultServer  = "http://localhost:8080"
	defaultTimeout = 30 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the commands clean up (cancel the job, write
	// the manifest); a second one ends the program at once.
	go func() { <-ctx.Done(); stop() }()
	a := &app{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		stderrTTY: isTerminal(os.Stderr),
		env:       environment{URL: os.Getenv("KOKORO_TTS_URL"), APIKey: os.Getenv("KOKORO_TTS_API_KEY")},
	}
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// environment holds the variables ttsctl reads; only main reads them.
type environment struct {
	URL    string // KOKORO_TTS_URL: the server
	APIKey string // KOKORO_TTS_API_KEY: sent as a bearer token
}

// app is one invocation: its streams, environment and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	stderrTTY      bool // progress lines and bars only on a terminal
	env            environment

	server  string        // -server, or the environment's, or the default
	key     string        // -key only; the environment's applies when it is empty
	timeout time.Duration // -timeout
}

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, a *app, args []string) int
}

func commands() []command {
	return []command{
		{"say", "[flags] TEXT... | -", "synthesise text and download the audio", runSay},
		{"status", "[-json] ID...", "show jobs", runStatus},
		{"jobs", "[-status s] [-limit n] [-json]", "list recent jobs, newest first", runJobs},
		{"cancel", "ID...", "cancel queued or running jobs", runCancel},
		{"voices", "[-lang a|b|...] [-json]", "list the voices by language", runVoices},
		{"batch", "[flags] LESSON", "synthesise every item of a lesson file (txt, CSV, JSON) into a folder", runBatch},
	}
}

// run parses the global flags, dispatches to the command and returns the
// exit code.
func (a *app) run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("ttsctl", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	a.globalFlags(fs)
	fs.Usage = func() { a.usage() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		a.usage()
		return exitUsage
	}
	name := fs.Arg(0)
	if name == "help" {
		a.usage()
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, a, fs.Args()[1:])
		}
	}
	fmt.Fprintf(a.stderr, "ttsctl: unknown command %q (try ttsctl help)\n", name)
	return exitUsage
}

func (a *app) usage() {
	w := a.stderr
	fmt.Fprintln(w, "Usage: ttsctl [global flags] COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-7s %s\n          %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Global flags (before or after the command):")
	fmt.Fprintln(w, "  -server URL      the API (env KOKORO_TTS_URL; default "+defaultServer+")")
	fmt.Fprintln(w, "  -key KEY         API key, sent as a bearer token (env KOKORO_TTS_API_KEY)")
	fmt.Fprintln(w, "  -timeout D       bound on each API call and on a stalled download (default 30s)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes: 0 ok; 1 a job failed or was canceled; 2 usage or invalid request;")
	fmt.Fprintln(w, "3 server, network or I/O error; 130 interrupted. 'ttsctl COMMAND -h' shows a command's flags.")
}

// globalFlags registers -server, -key and -timeout on fs. Every command's
// flag set has them too, so they work before or after the command name;
// the environment gives the defaults.
func (a *app) globalFlags(fs *flag.FlagSet) {
	if a.server == "" {
		a.server = a.env.URL
		if a.server == "" {
			a.server = defaultServer
		}
	}
	if a.timeout == 0 {
		a.timeout = defaultTimeout
	}
	fs.StringVar(&a.server, "server", a.server, "the API's base URL (env KOKORO_TTS_URL)")
	// The default shown is never the key from the environment.
	fs.StringVar(&a.key, "key", a.key, "API key, sent as \"Authorization: Bearer KEY\" (env KOKORO_TTS_API_KEY)")
	fs.DurationVar(&a.timeout, "timeout", a.timeout, "bound on each API call, and on a download that stalls")
}

// flagSet returns a command's flag set with the global flags and a usage
// line.
func (a *app) flagSet(name, args, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("ttsctl "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	a.globalFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: ttsctl %s %s\n\n%s\n\nFlags:\n", name, args, help)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags; done is set when the command must stop
// with code (help or a bad flag, which the flag package has reported).
func parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitUsage, true
	}
	return 0, false
}

// client builds the API client from the global flags.
func (a *app) client() (*client, error) {
	key := a.key
	if key == "" {
		key = a.env.APIKey
	}
	return newClient(a.server, key, a.timeout)
}

// usageError is a mistake in the command line or the input files.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// jobError is a job that ended without audio.
type jobError struct {
	ID, Status, Message string
}

func (e *jobError) Error() string {
	if e.Message == "" {
		return "job " + e.ID + " " + e.Status
	}
	return "job " + e.ID + " " + e.Status + ": " + e.Message
}

// exitCode maps an error to the exit code it stands for.
func exitCode(err error) int {
	var (
		ue *usageError
		je *jobError
		ae *apiError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &je):
		return exitJob
	case errors.As(err, &ae):
		// The server says the request itself is wrong: retrying the same
		// command cannot help, as with a usage error.
		switch ae.Code {
		case "invalid_request", "malformed_request", "too_large", "unsupported_media":
			return exitUsage
		}
	}
	return exitServer
}

// fail prints err as "ttsctl: [prefix: ]message" and returns its exit code.
// Server errors read "<code>: <message>".
func (a *app) fail(err error, prefix ...string) int {
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted"
	}
	if p := strings.Join(prefix, ": "); p != "" {
		msg = p + ": " + msg
	}
	fmt.Fprintln(a.stderr, "ttsctl: "+msg)
	return exitCode(err)
}

// worst returns the more serious of two exit codes: interrupted, then
// server, usage, job.
func worst(a, b int) int {
	rank := func(c int) int {
		switch c {
		case exitInterrupted:
			return 4
		case exitServer:
			return 3
		case exitUsage:
			return 2
		case exitJob:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}
