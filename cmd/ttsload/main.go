// Command ttsload is a closed-loop load generator for the kokoro-tts API.
//
// N clients each submit a job (POST /api/tts), poll it (GET /api/jobs/{id})
// until it ends, and submit the next, until -duration has passed; jobs still
// running then get -grace to finish. The report counts outcomes and gives
// throughput and submit and end-to-end latency percentiles; -soak also
// samples the API's goroutines and resident memory from /metrics.
//
//	ttsload -server http://127.0.0.1:8080 -clients 16 -duration 20s -format wav -distinct
//
// Only loopback and this host's own addresses are accepted as targets unless
// -allow-remote is given: load against other people's hosts is not allowed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the load and prints the report. Exit codes: 0 every
// accepted job finished and nothing went wrong, 1 errors or unfinished jobs,
// 2 usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ttsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.server, "server", "http://127.0.0.1:8080", "API base URL")
	fs.IntVar(&cfg.clients, "clients", 4, "concurrent clients (each has at most one job in flight)")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long to submit jobs")
	fs.DurationVar(&cfg.grace, "grace", 60*time.Second, "how long to wait for jobs still running after -duration")
	fs.StringVar(&cfg.format, "format", "wav", "audio format of the jobs")
	fs.StringVar(&cfg.voice, "voice", "af_heart", "voice of the jobs")
	fs.StringVar(&cfg.text, "text", "Good morning. The lesson starts at nine.", "text of the jobs")
	fs.BoolVar(&cfg.distinct, "distinct", false, "make every text distinct, so the audio cache never answers")
	fs.DurationVar(&cfg.poll, "poll", 50*time.Millisecond, "job polling interval")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "timeout of each HTTP request")
	fs.BoolVar(&cfg.soak, "soak", false, "sample the API's goroutines and resident memory from /metrics")
	fs.DurationVar(&cfg.sampleEvery, "sample-every", 5*time.Second, "sampling interval with -soak")
	fs.StringVar(&cfg.key, "key", os.Getenv("KOKORO_TTS_API_KEY"), "API key or token when the API requires authentication (default $KOKORO_TTS_API_KEY; an admin's key is exempt from the per-account rate limit and quota)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	allowRemote := fs.Bool("allow-remote", false, "allow a -server that is not loopback or this host")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ttsload: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.clients < 1 || cfg.duration <= 0 || cfg.poll <= 0 || cfg.timeout <= 0 || cfg.grace < 0 || cfg.sampleEvery <= 0 {
		fmt.Fprintln(stderr, "ttsload: -clients must be at least 1; -duration, -poll, -timeout and -sample-every positive; -grace not negative")
		return 2
	}
	u, err := url.Parse(cfg.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "ttsload: -server %q is not an http(s) URL\n", cfg.server)
		return 2
	}
	if !*allowRemote {
		if err := checkLocal(ctx, u.Hostname()); err != nil {
			fmt.Fprintf(stderr, "ttsload: refusing -server %s: %v (load may only target this host; -allow-remote overrides)\n", cfg.server, err)
			return 2
		}
	}
	cfg.server = u.Scheme + "://" + u.Host + trimSlash(u.Path)

	rep := newLoad(cfg).run(ctx)
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "ttsload:", err)
			return 1
		}
	} else {
		rep.print(stdout)
	}
	if rep.Errors > 0 || rep.Unfinished > 0 {
		return 1
	}
	return 0
}

func trimSlash(p string) string {
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

// checkLocal accepts host only when every address it names is a loopback
// address or one of this machine's interface addresses.
func checkLocal(ctx context.Context, host string) error {
	if host == "" {
		return errors.New("no host")
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(rctx, host)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	own, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		if ip.IsLoopback() {
			continue
		}
		if ip.IsUnspecified() {
			continue // 0.0.0.0 / :: connect to this host
		}
		found := false
		for _, a := range own {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s is not a loopback address or an address of this host", ip)
		}
	}
	return nil
}
