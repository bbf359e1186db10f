package main

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/httpapi"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/storage"
)

// checks returns the dependency checks of /api/health. The engine check is
// the in-process engine in embedded mode, the live workers otherwise.
func checks(db *sqlstore.DB, rdb redis.UniversalClient, objects storage.Store, engine tts.Synthesizer, registry *fleet.Registry) []httpapi.Check {
	out := []httpapi.Check{
		{Name: "database", Check: func(ctx context.Context) (any, error) { return nil, db.Ping(ctx) }},
		{Name: "redis", Check: func(ctx context.Context) (any, error) { return nil, rdb.Ping(ctx).Err() }},
		{Name: "storage", Check: func(ctx context.Context) (any, error) {
			return map[string]string{"backend": objects.Name()}, objects.Ping(ctx)
		}},
	}
	if engine != nil {
		out = append(out, httpapi.Check{Name: "engine", Check: func(ctx context.Context) (any, error) {
			info := engine.Info()
			if info.Name == "espeak-ng" {
				return map[string]any{"engine": info, "note": "Kokoro is not in use: no model is configured (make model, then KOKORO_MODEL_PATH); speech comes from espeak-ng"}, nil
			}
			return info, nil
		}})
		return out
	}
	return append(out, httpapi.Check{Name: "engine", Check: func(ctx context.Context) (any, error) {
		ws, err := registry.List(ctx)
		if err != nil {
			return nil, err
		}
		if len(ws) == 0 {
			return nil, tts.Errorf(tts.EUNAVAILABLE, "no worker is running: jobs are accepted but wait until one starts")
		}
		type view struct {
			ID          string         `json:"id"`
			Engine      tts.EngineInfo `json:"engine"`
			Concurrency int            `json:"concurrency"`
			LastSeen    time.Time      `json:"last_seen"`
		}
		var out []view
		for _, w := range ws {
			out = append(out, view{w.ID, w.Engine, w.Concurrency, w.LastSeen})
		}
		return map[string]any{"workers": out}, nil
	}})
}

// voiceSource returns the voices jobs may ask for: the in-process engine's
// in embedded mode; otherwise those the live workers announce, cached for a
// few seconds, or the whole catalogue while no worker runs (jobs then wait).
func voiceSource(engine tts.Synthesizer, registry *fleet.Registry) jobs.VoiceSource {
	if engine != nil {
		v := engine.Voices()
		return func(context.Context) []tts.Voice { return v }
	}
	catalogue := tts.NewVoiceSet(tts.Catalogue())
	var (
		mu      sync.Mutex
		cached  []tts.Voice
		fetched time.Time
	)
	return func(ctx context.Context) []tts.Voice {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(fetched) < 5*time.Second && cached != nil {
			return cached
		}
		// A short deadline, and the answer cached even when Redis is down,
		// so that submissions do not queue up behind this lock.
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		ws, err := registry.List(lctx)
		if err != nil || len(ws) == 0 {
			cached, fetched = tts.Catalogue(), time.Now()
			return cached
		}
		seen := map[string]bool{}
		var out []tts.Voice
		for _, w := range ws {
			for _, id := range w.Voices {
				if v, ok := catalogue[id]; ok && !seen[id] {
					seen[id] = true
					out = append(out, v)
				}
			}
		}
		cached, fetched = out, time.Now()
		return out
	}
}

// redactDSN hides a password in a database URL for logging.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	if i := strings.Index(dsn, "@"); i >= 0 {
		return "***" + dsn[i:]
	}
	return dsn
}
