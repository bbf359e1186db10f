package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// build is the build subcommand.
func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	src := fs.String("src", "", "directory of OSV files (golang.org/x/vulndb's data/osv)")
	out := fs.String("out", "", "directory to write the database to (must not exist)")
	modified := fs.String("modified", "", "RFC 3339 time set on entries whose modified time is zero")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return buildDB(*src, *out, *modified, os.Stdout)
}

// buildDB writes the database built from the OSV files in src to out,
// and a one-line summary to log.
func buildDB(src, out, modified string, log io.Writer) error {
	if src == "" || out == "" || modified == "" {
		return errors.New("-src, -out and -modified are required")
	}
	snapshot, err := time.Parse(time.RFC3339, modified)
	if err != nil {
		return fmt.Errorf("-modified: %w", err)
	}
	entries, err := load(src, snapshot.UTC())
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("no OSV entries (*.json) in %s", src)
	}
	db, err := newIndex(entries)
	if err != nil {
		return err
	}
	if err := db.write(out, entries); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %d entries for %d modules to %s (modified %s)\n",
		len(entries), len(db.modules), out, db.modified.Format(time.RFC3339))
	return nil
}

// entry is one OSV entry: the fields the index needs, and the raw entry
// (with its modified time fixed) to write back.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges,omitempty"`
	} `json:"affected"`

	raw map[string]json.RawMessage
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced,omitempty"`
		Fixed      string `json:"fixed,omitempty"`
	} `json:"events"`
}

func load(src string, snapshot time.Time) ([]*entry, error) {
	files, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	entries := make([]*entry, 0, len(files))
	for _, f := range files {
		e, err := loadEntry(f, snapshot)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func loadEntry(file string, snapshot time.Time) (*entry, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &e.raw); err != nil {
		return nil, err
	}
	if e.ID == "" || filepath.Base(file) != e.ID+".json" {
		return nil, fmt.Errorf("file name does not match the entry's id %q", e.ID)
	}
	if e.Modified.IsZero() {
		e.Modified = snapshot
		m, err := json.Marshal(e.Modified)
		if err != nil {
			return nil, err
		}
		e.raw["modified"] = m
	}
	return &e, nil
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

type index struct {
	modified time.Time
	modules  map[string]*module
	vulns    []vuln
}

// newIndex computes the index endpoints as golang.org/x/vulndb's
// internal/database does.
func newIndex(entries []*entry) (*index, error) {
	idx := &index{modules: map[string]*module{}}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.ID] {
			return nil, fmt.Errorf("id %q appears twice", e.ID)
		}
		seen[e.ID] = true
		if e.Modified.After(idx.modified) {
			idx.modified = e.Modified
		}
		idx.vulns = append(idx.vulns, vuln{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			path := a.Package.Name
			if path == "" {
				return nil, fmt.Errorf("%s: affected package without a name", e.ID)
			}
			m := idx.modules[path]
			if m == nil {
				m = &module{Path: path, Vulns: []moduleVuln{}}
				idx.modules[path] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: latestFixed(a.Ranges)})
		}
	}
	return idx, nil
}

// latestFixed returns the latest fixed version not superseded by a later
// introduction, or "" if there is none: any version at or above it is not
// affected. It is golang.org/x/vulndb's osvutils.LatestFixed (and
// golang.org/x/vuln's semver.NonSupersededFix, which govulncheck uses for
// in-memory databases).
func latestFixed(ranges []osvRange) string {
	var latest string
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && less(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// less compares OSV versions (semver without the "v"); "" is less than
// any valid version.
func less(v1, v2 string) bool {
	return semver.Compare(canonical(v1), canonical(v2)) < 0
}

func canonical(v string) string {
	v = strings.TrimPrefix(strings.TrimPrefix(v, "v"), "go")
	return "v" + v
}

func (idx *index) write(out string, entries []*entry) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s already exists", out)
	}
	modules := make([]*module, 0, len(idx.modules))
	for _, m := range idx.modules {
		sort.SliceStable(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		modules = append(modules, m)
	}
	sort.Slice(modules, func(i, j int) bool { return modules[i].Path < modules[j].Path })
	sort.Slice(idx.vulns, func(i, j int) bool { return idx.vulns[i].ID < idx.vulns[j].ID })

	files := map[string]any{
		"index/db.json": struct {
			Modified time.Time `json:"modified"`
		}{idx.modified},
		"index/modules.json": modules,
		"index/vulns.json":   idx.vulns,
	}
	for _, e := range entries {
		files["ID/"+e.ID+".json"] = e.raw
	}
	for _, dir := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, dir), 0o755); err != nil {
			return err
		}
	}
	for name, v := range files {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, filepath.FromSlash(name)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
