package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLatestFixed(t *testing.T) {
	r := func(events ...[2]string) osvRange {
		var rg osvRange
		rg.Type = "SEMVER"
		for _, e := range events {
			rg.Events = append(rg.Events, struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			}{e[0], e[1]})
		}
		return rg
	}
	in := func(v string) [2]string { return [2]string{v, ""} }
	fx := func(v string) [2]string { return [2]string{"", v} }
	for _, tt := range []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"none", nil, ""},
		{"no fix", []osvRange{r(in("0"))}, ""},
		{"fixed", []osvRange{r(in("0"), fx("1.0.4"))}, "1.0.4"},
		{"reintroduced", []osvRange{r(in("0"), fx("1.0.4"), in("1.1.2"))}, ""},
		{"latest of several", []osvRange{r(fx("1.0.0"), in("0"), fx("0.1.0"), in("0.5.0"))}, "1.0.0"},
		{"semver order, not string order", []osvRange{r(in("0"), fx("1.9.0"), in("1.10.0"), fx("1.10.2"))}, "1.10.2"},
		{"pseudo-version", []osvRange{r(in("0"), fx("0.0.0-20260626085133-7cb96ac80a6d"))}, "0.0.0-20260626085133-7cb96ac80a6d"},
	} {
		if got := latestFixed(tt.ranges); got != tt.want {
			t.Errorf("%s: latestFixed = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestBuildDB(t *testing.T) {
	src := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("GO-2026-0002.json", `{"id":"GO-2026-0002","modified":"0001-01-01T00:00:00Z","aliases":["CVE-1"],"details":"d",
		"affected":[{"package":{"name":"example.com/a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.0"}]}],"ecosystem_specific":{"imports":[{"path":"example.com/a","symbols":["F"]}]}}]}`)
	write("GO-2026-0001.json", `{"id":"GO-2026-0001","modified":"2025-01-02T03:04:05Z","details":"d",
		"affected":[{"package":{"name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]},
		            {"package":{"name":"example.com/a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"2.0.0"},{"fixed":"2.0.1"}]}]}]}`)
	out := filepath.Join(t.TempDir(), "db")
	if err := buildDB(src, out, "2026-11-05T23:49:57Z", io.Discard); err != nil {
		t.Fatal(err)
	}
	read := func(name string, v any) {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	snapshot := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	old := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	var meta struct{ Modified time.Time }
	read("index/db.json", &meta)
	if !meta.Modified.Equal(snapshot) {
		t.Errorf("db.json modified = %v, want %v", meta.Modified, snapshot)
	}
	var modules []module
	read("index/modules.json", &modules)
	wantModules := []module{
		{Path: "example.com/a", Vulns: []moduleVuln{{"GO-2026-0001", old, "2.0.1"}, {"GO-2026-0002", snapshot, "1.2.0"}}},
		{Path: "stdlib", Vulns: []moduleVuln{{"GO-2026-0001", old, ""}}},
	}
	if !reflect.DeepEqual(modules, wantModules) {
		t.Errorf("modules.json = %+v, want %+v", modules, wantModules)
	}
	var vulns []vuln
	read("index/vulns.json", &vulns)
	wantVulns := []vuln{{"GO-2026-0001", old, nil}, {"GO-2026-0002", snapshot, []string{"CVE-1"}}}
	if !reflect.DeepEqual(vulns, wantVulns) {
		t.Errorf("vulns.json = %+v, want %+v", vulns, wantVulns)
	}
	var e map[string]any
	read("ID/GO-2026-0002.json", &e)
	if e["modified"] != "2026-11-05T23:49:57Z" || e["details"] != "d" || e["affected"].([]any)[0].(map[string]any)["ecosystem_specific"] == nil {
		t.Errorf("GO-2026-0002.json = %v: want modified set and the other fields kept", e)
	}

	if err := buildDB(src, out, "2026-11-05T23:49:57Z", io.Discard); err == nil {
		t.Error("building over an existing directory succeeded")
	}
	write("GO-2026-0003.json", `{"id":"GO-2026-0004","details":"d","affected":[]}`)
	if err := buildDB(src, filepath.Join(t.TempDir(), "db"), "2026-11-05T23:49:57Z", io.Discard); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("a file named for another ID: err = %v", err)
	}
}

func TestParseAllowlist(t *testing.T) {
	got, err := parseAllowlist(strings.NewReader("# comment\n\nGO-2026-6875  no fix in v4; see notes # trailing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"GO-2026-6875": "no fix in v4; see notes"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"GO-2026-6875\n", "CVE-2026-1 reason\n"} {
		if _, err := parseAllowlist(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// govulncheck -format json output, cut down: one called vulnerability, one
// only imported, one only required.
const scan = `{"config":{"db_last_modified":"2026-11-05T23:49:57Z"}}
{"osv":{"id":"GO-2026-0001","summary":"called"}}
{"osv":{"id":"GO-2026-0002","summary":"imported"}}
{"osv":{"id":"GO-2026-0003","summary":"required"}}
{"finding":{"osv":"GO-2026-0001","fixed_version":"v1.2.0","trace":[{"module":"example.com/a","version":"v1.0.0","package":"example.com/a/p","function":"F","receiver":"*T"},{"module":"example.com/me","package":"example.com/me","function":"main","position":{"filename":"main.go","line":7}}]}}
{"finding":{"osv":"GO-2026-0002","trace":[{"module":"example.com/a","version":"v1.0.0","package":"example.com/a/p"}]}}
{"finding":{"osv":"GO-2026-0003","trace":[{"module":"example.com/b","version":"v1.0.0"}]}}
`

func TestCheck(t *testing.T) {
	allowFile := filepath.Join(t.TempDir(), "allow")
	run := func(allow string) (string, error) {
		if err := os.WriteFile(allowFile, []byte(allow), 0o644); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err := check([]string{"-allow", allowFile}, strings.NewReader(scan), &out)
		return out.String(), err
	}

	out, err := run("")
	var exit exitError
	if !errors.As(err, &exit) || exit != 3 {
		t.Errorf("not allowed: err = %v, want exit status 3", err)
	}
	for _, want := range []string{"GO-2026-0001 example.com/a@v1.0.0 (fixed: v1.2.0): called", "main.go:7 calls example.com/a/p.T.F", "NOT ALLOWED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "GO-2026-0002") || strings.Contains(out, "GO-2026-0003") {
		t.Errorf("output lists vulnerabilities that are not called:\n%s", out)
	}

	out, err = run("GO-2026-0001 accepted\nGO-2026-0002 gone\n")
	if err != nil {
		t.Errorf("allowed: err = %v\n%s", err, out)
	}
	for _, want := range []string{"allowed: accepted", "GO-2026-0002 is allowlisted but no longer called"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
