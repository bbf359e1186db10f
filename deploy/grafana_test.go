package deploy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/metrics"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// The Grafana dashboard (deploy/grafana/kokoro-tts.json) may only query what the binaries export.
// The names are not listed here: they are gathered from registries built with pkg/metrics'
// constructors exactly as cmd/api (embedded mode: all of them) and cmd/worker wire them.

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query string `json:"query"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// exported gathers every metric family the binaries register, with the label names of each. Every
// vector gets one child first: a vector without children is not gathered at all.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mr := miniredis.RunT(t)
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: mr.Addr()})
	t.Cleanup(func() { inspector.Close() })

	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewQueueCollector(inspector, log), metrics.NewJobsCollector(jobCounter{}, log))
	h := metrics.NewHTTP(reg)
	h.Duration.WithLabelValues("/api/tts", "POST", "202").Observe(0.01)
	w := metrics.NewWorker(reg, tts.EngineInfo{Name: "tone", Device: "cpu", Model: "test", Version: "1"})
	w.Jobs.WithLabelValues("succeeded").Inc()
	w.Failures.WithLabelValues("synthesis").Inc()
	w.Synthesis.WithLabelValues("tone", "cpu").Observe(0.1)
	w.AudioSeconds.WithLabelValues("tone", "cpu").Add(1)
	w.RealTime.WithLabelValues("tone", "cpu").Observe(0.1)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{}
	for _, f := range families {
		var labels []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		name := f.GetName()
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[name+"_bucket"] = append(slices.Clone(labels), "le")
			names[name+"_sum"], names[name+"_count"] = labels, labels
		case "SUMMARY":
			names[name] = append(slices.Clone(labels), "quantile")
			names[name+"_sum"], names[name+"_count"] = labels, labels
		default:
			names[name] = labels
		}
	}
	// Sanity: the registries hold what pkg/metrics defines, not an empty set.
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "kokoro_tts_queue_tasks",
		"kokoro_tts_jobs", "kokoro_tts_http_request_duration_seconds_bucket", "kokoro_tts_worker_failures_total"} {
		if _, ok := names[want]; !ok {
			t.Fatalf("the gathered registry lacks %s; it has %v", want, slices.Sorted(maps.Keys(names)))
		}
	}
	return names
}

// jobCounter stands in for the database behind the jobs collector.
type jobCounter struct{}

func (jobCounter) CountByStatus(context.Context) (map[tts.JobStatus]int, error) {
	return map[tts.JobStatus]int{tts.StatusQueued: 1}, nil
}

// targetLabels are added by Prometheus to every series it scrapes.
var targetLabels = []string{"job", "instance"}

// promqlWords are PromQL's functions, aggregations and keywords: identifiers that are not metrics.
var promqlWords = strings.Fields(`abs absent absent_over_time avg avg_over_time bottomk ceil changes clamp clamp_max
	clamp_min count count_over_time count_values day_of_month day_of_week day_of_year days_in_month delta deriv exp
	floor group histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
	histogram_sum holt_winters hour idelta increase irate label_join label_replace last_over_time limitk limit_ratio
	ln log10 log2 mad_over_time max max_over_time min min_over_time minute month predict_linear present_over_time
	quantile quantile_over_time rate resets round scalar sgn sort sort_by_label sort_by_label_desc sort_desc sqrt
	stddev stddev_over_time stdvar stdvar_over_time sum sum_over_time time timestamp topk vector year
	and or unless by without on ignoring group_left group_right bool offset atan2 inf nan`)

// selector is one metric named in an expression and the label names of its matchers.
type selector struct {
	metric string
	labels []string
}

// parsedExpr is what the test needs from a PromQL expression.
type parsedExpr struct {
	selectors []selector
	grouping  []string // labels in by, without, on, ignoring, group_left and group_right
}

var (
	identRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelsRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
)

// parsePromQL finds the metric names, matcher labels and grouping labels of expr. It is a small
// scanner, not a PromQL parser: enough for the dashboard's expressions, and checked by
// TestParsePromQL.
func parsePromQL(expr string) parsedExpr {
	var p parsedExpr
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '[': // a range or subquery duration
			i += strings.IndexByte(expr[i:], ']') + 1
		case c == '$': // a Grafana variable
			m := identRE.FindString(expr[i+1:])
			i += 1 + len(m)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case identRE.MatchString(expr[i:]):
			word := identRE.FindString(expr[i:])
			i += len(word)
			rest := strings.TrimLeft(expr[i:], " \t\n")
			switch {
			case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, word):
				if strings.HasPrefix(rest, "(") {
					end := strings.IndexByte(rest, ')')
					for _, l := range strings.Split(rest[1:end], ",") {
						if l = strings.TrimSpace(l); l != "" {
							p.grouping = append(p.grouping, l)
						}
					}
					i = len(expr) - len(rest) + end + 1
				}
			case slices.Contains(promqlWords, word):
			default:
				s := selector{metric: word}
				if strings.HasPrefix(rest, "{") {
					end := strings.IndexByte(rest, '}')
					for _, m := range labelsRE.FindAllStringSubmatch(rest[1:end], -1) {
						s.labels = append(s.labels, m[1])
					}
					i = len(expr) - len(rest) + end + 1
				}
				p.selectors = append(p.selectors, s)
			}
		default:
			i++
		}
	}
	return p
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func TestParsePromQL(t *testing.T) {
	p := parsePromQL(`histogram_quantile(0.95, sum by (le, route) (rate(kokoro_tts_http_request_duration_seconds_bucket{route!~".*/events", status = "200"}[$__rate_interval]))) / on(instance) group_left count without (x) (up) > bool 2`)
	want := parsedExpr{
		selectors: []selector{{"kokoro_tts_http_request_duration_seconds_bucket", []string{"route", "status"}}, {"up", nil}},
		grouping:  []string{"le", "route", "instance", "x"},
	}
	if !slices.EqualFunc(p.selectors, want.selectors, func(a, b selector) bool {
		return a.metric == b.metric && slices.Equal(a.labels, b.labels)
	}) || !slices.Equal(p.grouping, want.grouping) {
		t.Fatalf("got %+v, want %+v", p, want)
	}
}

// TestGrafanaDashboard checks deploy/grafana/kokoro-tts.json: it is a dashboard whose every query
// names only metrics, matcher labels and grouping labels that the binaries really export, reads
// them through the ${DS_PROMETHEUS} data source variable, and shows every kokoro_tts metric.
func TestGrafanaDashboard(t *testing.T) {
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(readRepoFile(t, "deploy/grafana/kokoro-tts.json")))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("deploy/grafana/kokoro-tts.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Fatalf("the dashboard needs a title and a uid (got %q, %q)", d.Title, d.UID)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool {
		return v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Fatalf("no template variable DS_PROMETHEUS of type datasource (prometheus): %+v", d.Templating.List)
	}

	names := exported(t)
	used := map[string]bool{}
	ids := map[int]string{}
	var panels []panel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	queries := 0
	for _, p := range panels {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or shared with %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: data source %+v, want uid ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			where := p.Title + " / " + tg.RefID
			if tg.Datasource != nil && tg.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("%s: data source %+v, want uid ${DS_PROMETHEUS}", where, tg.Datasource)
			}
			q := parsePromQL(tg.Expr)
			if len(q.selectors) == 0 {
				t.Errorf("%s: no metric in %q", where, tg.Expr)
			}
			available := slices.Clone(targetLabels)
			for _, s := range q.selectors {
				labels, ok := names[s.metric]
				if !ok {
					t.Errorf("%s: %s is not exported by the binaries (expr %q)", where, s.metric, tg.Expr)
					continue
				}
				used[s.metric] = true
				available = append(available, labels...)
				for _, l := range s.labels {
					if !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
						t.Errorf("%s: %s has no label %q (it has %v)", where, s.metric, l, labels)
					}
				}
			}
			for _, l := range q.grouping {
				if !slices.Contains(available, l) {
					t.Errorf("%s: grouping label %q is on none of the metrics of %q", where, l, tg.Expr)
				}
			}
			for _, m := range regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`).FindAllStringSubmatch(tg.LegendFormat, -1) {
				if !slices.Contains(available, m[1]) {
					t.Errorf("%s: legend label %q is on none of the metrics of %q", where, m[1], tg.Expr)
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
	// Every metric of the service is on the dashboard (histograms through any of their series).
	for name := range names {
		if !strings.HasPrefix(name, "kokoro_tts_") {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !used[name] && !used[base+"_bucket"] && !used[base+"_sum"] && !used[base+"_count"] {
			t.Errorf("%s is exported but on no panel of the dashboard", name)
		}
	}
}
