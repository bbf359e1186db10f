package phonemize

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// espeak-ng is run as processes, never linked: its library keeps global state
// and is not thread-safe. A long-lived process per language reads one text per
// line on stdin (espeak-ng's line mode: each line is synthesised on its own and
// stdout is flushed after it) and writes one line of IPA per clause. After each
// text we send a sentinel in espeak-ng's phoneme-input syntax ([[...]]); its
// output marks where the text's output ends. Text from the front end can never
// switch to phoneme input, because '[' and ']' are punctuation that kokoro-js
// splits the text on, so it never reaches espeak-ng.

// sentinelInput is two palatalised "zh" phonemes (ʑʑ), which no English
// word produces. It is short on purpose: espeak-ng synthesises (and drops) the
// audio of everything it reads, and each sentinel phoneme costs about 0.1 ms.
const sentinelInput = "[[Z;Z;]]"

// maxLineBytes is the longest text sent through line mode: espeak-ng reads
// lines with fgets into a 1000-byte buffer, so a longer line would be cut in
// two and read as two texts. Longer texts go to a one-shot process.
const maxLineBytes = 990

// espeakArgs are the flags shared by both modes: no audio out, IPA phonemes
// (with stress marks, no separators) on stdout, as the espeak-ng build inside
// kokoro-js's phonemizer package writes them (IPA mode, no tie).
//
// espeak-ng synthesises the audio even when it only prints phonemes, and that
// is most of its work. A fast rate (400 words a minute; from 450 on it
// switches to a slower time-stretching path) halves it without changing the
// phonemes: TestLineModeMatchesOneShot compares with the default rate, and
// the golden tests with kokoro-js.
func espeakArgs(voice string) []string { return []string{"-q", "--ipa", "-v", voice, "-s", "400"} }

// proc is one long-lived espeak-ng process.
type proc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stdout   *bufio.Reader
	stderr   *limitedBuffer
	sentinel string // the sentinel's output line
}

// limitedBuffer keeps the first bytes of a process's stderr for errors.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// startProc starts espeak-ng for voice in line mode and learns its sentinel.
func startProc(ctx context.Context, path, voice string) (*proc, error) {
	cmd := exec.Command(path, espeakArgs(voice)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 64<<10), stderr: &limitedBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, missingESpeak(path, err)
	}
	stop := context.AfterFunc(ctx, p.kill)
	defer stop()
	if _, err := io.WriteString(stdin, sentinelInput+"\n"); err != nil {
		p.abort()
		return nil, p.failure(ctx, err)
	}
	line, err := p.readLine()
	if err != nil {
		p.abort()
		return nil, p.failure(ctx, err)
	}
	if line == "" || strings.ContainsAny(line, " \t") {
		p.abort()
		return nil, fmt.Errorf("espeak-ng %s: unexpected phoneme-input output %q", voice, line)
	}
	p.sentinel = line
	return p, nil
}

func (p *proc) readLine() (string, error) {
	line, err := p.stdout.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// kill stops the process; it is safe to call more than once.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

// close ends the process politely (EOF on stdin) and reaps it.
func (p *proc) close() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}

// abort kills the process and reaps it.
func (p *proc) abort() {
	p.kill()
	p.close()
}

// failure describes why a conversation with the process broke off.
func (p *proc) failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if msg := p.stderr.String(); msg != "" {
		return fmt.Errorf("espeak-ng: %w: %s", err, msg)
	}
	return fmt.Errorf("espeak-ng: %w", err)
}

// phonemize sends each line (prepared by espeakLine) and returns its IPA:
// the non-empty output lines joined by spaces, as kokoro-js does. On any
// error the process is killed and must not be reused.
func (p *proc) phonemize(ctx context.Context, lines []string) ([]string, error) {
	// A watchdog against a stuck process, far above espeak-ng's ~2 ms a line.
	ctx, cancel := context.WithTimeout(ctx, watchdog(len(lines)))
	defer cancel()
	stop := context.AfterFunc(ctx, p.kill)
	defer stop()

	var input bytes.Buffer
	for _, l := range lines {
		input.WriteString(l)
		input.WriteByte('\n')
		input.WriteString(sentinelInput)
		input.WriteByte('\n')
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := p.stdin.Write(input.Bytes())
		writeErr <- err
	}()

	out := make([]string, len(lines))
	for i := range lines {
		var parts []string
		for {
			line, err := p.readLine()
			if err != nil {
				p.kill()
				<-writeErr
				return nil, p.failure(ctx, err)
			}
			if line == p.sentinel {
				break
			}
			if line != "" {
				parts = append(parts, line)
			}
		}
		out[i] = strings.Join(parts, " ")
	}
	if err := <-writeErr; err != nil {
		p.kill()
		return nil, p.failure(ctx, err)
	}
	return out, ctx.Err()
}

// watchdog is how long a batch of n lines may take before its espeak-ng
// process is presumed stuck and killed.
func watchdog(n int) time.Duration { return 30*time.Second + time.Duration(n)*100*time.Millisecond }

// oneShot phonemizes one text with its own espeak-ng process reading all of
// stdin as a single text (--stdin), for texts too long for line mode.
func oneShot(ctx context.Context, path string, args []string, text string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, watchdog(1+len(text)/100))
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append(args, "--stdin")...)
	cmd.Stdin = strings.NewReader(text)
	var stdout bytes.Buffer
	stderr := &limitedBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return "", missingESpeak(path, err)
		}
		return "", fmt.Errorf("espeak-ng: %w: %s", err, stderr.String())
	}
	var parts []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " "), nil
}

func missingESpeak(path string, err error) error {
	return fmt.Errorf("cannot run espeak-ng (%q): %w; install the Debian package espeak-ng (apt-get install espeak-ng)", path, err)
}

// espeakLine prepares one text part for line mode so that espeak-ng reads it
// exactly as it reads the part alone (as kokoro-js's phonemizer passes it):
//   - the line ends with " \n": espeak-ng sees the newline that ends a line,
//     and a word right before a newline is read differently ("CEO's\n" is
//     sˈiːoʊz, "CEO's" at the end of a text sˌiːˌiːˈoʊz); a space before it
//     makes it read as at the end of the text;
//   - a newline inside the part becomes "\r", which espeak-ng treats like a
//     newline (not like a space) but which does not end the line;
//   - NUL would end the C string early and is dropped.
//
// ok is false when the part is too long for one line. TestLineModeMatchesOneShot
// checks the equivalence.
func espeakLine(text string) (line string, ok bool) {
	line = strings.Map(func(r rune) rune {
		switch r {
		case '\n':
			return '\r'
		case 0:
			return -1
		}
		return r
	}, text) + " "
	return line, len(line) <= maxLineBytes
}

// pool holds up to n long-lived processes of one voice.
type pool struct {
	path, voice string
	sem         chan struct{}
	mu          sync.Mutex
	idle        []*proc
	closed      bool
}

func newPool(path, voice string, n int) *pool {
	return &pool{path: path, voice: voice, sem: make(chan struct{}, n)}
}

var errClosed = errors.New("phonemize: front end closed")

// acquire takes an idle process or starts one, waiting while n are busy.
func (pl *pool) acquire(ctx context.Context) (*proc, error) {
	select {
	case pl.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		<-pl.sem
		return nil, errClosed
	}
	if n := len(pl.idle); n > 0 {
		p := pl.idle[n-1]
		pl.idle = pl.idle[:n-1]
		pl.mu.Unlock()
		return p, nil
	}
	pl.mu.Unlock()
	p, err := startProc(ctx, pl.path, pl.voice)
	if err != nil {
		<-pl.sem
		return nil, err
	}
	return p, nil
}

// release returns a healthy process to the pool; a broken one is reaped.
func (pl *pool) release(p *proc, healthy bool) {
	pl.mu.Lock()
	keep := healthy && !pl.closed
	if keep {
		pl.idle = append(pl.idle, p)
	}
	pl.mu.Unlock()
	if !keep {
		p.abort()
	}
	<-pl.sem
}

// close ends the idle processes; busy ones end when released.
func (pl *pool) close() {
	pl.mu.Lock()
	pl.closed = true
	idle := pl.idle
	pl.idle = nil
	pl.mu.Unlock()
	for _, p := range idle {
		p.close()
	}
}

// run phonemizes lines with a pooled process. A process that fails (it may
// have died while idle) is replaced and the lines are tried once more, so a
// lost process costs one retry, not a failed request.
func (pl *pool) run(ctx context.Context, lines []string) ([]string, error) {
	var err error
	for try := 0; try < 2; try++ {
		var p *proc
		if p, err = pl.acquire(ctx); err != nil {
			return nil, err
		}
		var res []string
		res, err = p.phonemize(ctx, lines)
		pl.release(p, err == nil)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
	}
	return nil, err
}

// batchPerProcess is the fewest lines worth handing to another process of
// the pool when one request has many.
const batchPerProcess = 32

// phonemize returns the IPA of each text part, in order. Parts too long for
// line mode get a one-shot process; the others are spread over up to n
// pooled processes.
func (pl *pool) phonemize(ctx context.Context, parts []string) ([]string, error) {
	out := make([]string, len(parts))
	var lines []string
	var at []int
	for i, t := range parts {
		line, ok := espeakLine(t)
		if !ok {
			ph, err := oneShot(ctx, pl.path, espeakArgs(pl.voice), strings.ReplaceAll(t, "\x00", ""))
			if err != nil {
				return nil, err
			}
			out[i] = ph
			continue
		}
		lines = append(lines, line)
		at = append(at, i)
	}
	if len(lines) == 0 {
		return out, nil
	}
	groups := min(cap(pl.sem), (len(lines)+batchPerProcess-1)/batchPerProcess)
	size := (len(lines) + groups - 1) / groups
	errs := make([]error, groups)
	var wg sync.WaitGroup
	for g := range groups {
		lo, hi := g*size, min((g+1)*size, len(lines))
		if lo >= hi {
			continue
		}
		run := func() {
			res, err := pl.run(ctx, lines[lo:hi])
			if err != nil {
				errs[g] = err
				return
			}
			for k, r := range res {
				out[at[lo+k]] = r
			}
		}
		if groups == 1 {
			run()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
