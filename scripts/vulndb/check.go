package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// check is the check subcommand.
func check(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	allowFile := fs.String("allow", "", "allowlist file: lines of 'ID reason'; empty for none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	allow := map[string]string{}
	if *allowFile != "" {
		f, err := os.Open(*allowFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if allow, err = parseAllowlist(f); err != nil {
			return fmt.Errorf("%s: %w", *allowFile, err)
		}
	}
	called, err := calledVulns(in)
	if err != nil {
		return fmt.Errorf("reading govulncheck -format json output: %w", err)
	}
	if report(out, called, allow) {
		return exitError(3)
	}
	return nil
}

var idRE = regexp.MustCompile(`^GO-\d{4}-\d+$`)

// parseAllowlist reads lines of "ID reason"; the reason is required.
func parseAllowlist(r io.Reader) (map[string]string, error) {
	allow := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		id, reason, _ := strings.Cut(strings.TrimSpace(line), " ")
		reason = strings.TrimSpace(reason)
		switch {
		case id == "":
			continue
		case !idRE.MatchString(id):
			return nil, fmt.Errorf("line %d: %q is not a Go vulnerability ID (GO-YYYY-NNNN)", n, id)
		case reason == "":
			return nil, fmt.Errorf("line %d: %s has no reason", n, id)
		}
		allow[id] = reason
	}
	return allow, sc.Err()
}

// calledVuln is one vulnerability that the scanned code calls.
type calledVuln struct {
	ID, Summary, Module, Version, Fixed, Trace string

	frames int // length of the trace shown
}

// govulncheck's JSON protocol (golang.org/x/vuln/internal/govulncheck):
// a stream of messages, each with one field set.
type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
			Receiver string `json:"receiver"`
			Position *struct {
				Filename string `json:"filename"`
				Line     int    `json:"line"`
			} `json:"position"`
		} `json:"trace"`
	} `json:"finding"`
}

// calledVulns returns the vulnerabilities with a symbol-level finding (the
// first trace frame names a function), sorted by ID.
func calledVulns(r io.Reader) ([]calledVuln, error) {
	summaries := map[string]string{}
	found := map[string]*calledVuln{}
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue
		}
		// Show the most direct call found.
		if prev := found[f.OSV]; prev != nil && prev.frames <= len(f.Trace) {
			continue
		}
		v := &calledVuln{ID: f.OSV, Module: f.Trace[0].Module, Version: f.Trace[0].Version, Fixed: f.FixedVersion, frames: len(f.Trace)}
		// The last frame is the caller in the scanned code.
		last := f.Trace[len(f.Trace)-1]
		callee := f.Trace[0].Package + "." + f.Trace[0].Function
		if f.Trace[0].Receiver != "" {
			callee = f.Trace[0].Package + "." + strings.TrimPrefix(f.Trace[0].Receiver, "*") + "." + f.Trace[0].Function
		}
		v.Trace = callee
		if last.Position != nil && len(f.Trace) > 1 {
			v.Trace = fmt.Sprintf("%s:%d calls %s", last.Position.Filename, last.Position.Line, callee)
		}
		found[f.OSV] = v
	}
	called := make([]calledVuln, 0, len(found))
	for _, v := range found {
		v.Summary = summaries[v.ID]
		called = append(called, *v)
	}
	sort.Slice(called, func(i, j int) bool { return called[i].ID < called[j].ID })
	return called, nil
}

// report prints the called vulnerabilities and stale allowlist entries,
// and says whether any called vulnerability is not allowed.
func report(w io.Writer, called []calledVuln, allow map[string]string) (failed bool) {
	seen := map[string]bool{}
	for _, v := range called {
		seen[v.ID] = true
		fixed := v.Fixed
		if fixed == "" {
			fixed = "none"
		}
		status := "NOT ALLOWED"
		if reason, ok := allow[v.ID]; ok {
			status = "allowed: " + reason
		} else {
			failed = true
		}
		fmt.Fprintf(w, "%s %s@%s (fixed: %s): %s\n    %s\n    %s\n", v.ID, v.Module, v.Version, fixed, v.Summary, v.Trace, status)
	}
	var stale []string
	for id := range allow {
		if !seen[id] {
			stale = append(stale, id)
		}
	}
	sort.Strings(stale)
	for _, id := range stale {
		fmt.Fprintf(w, "%s is allowlisted but no longer called: remove it from the allowlist\n", id)
	}
	return failed
}
