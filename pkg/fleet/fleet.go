// Package fleet keeps a registry of running workers in Redis: each worker
// announces its engine, device, concurrency and voices every few seconds
// under a key that expires, so any API replica can tell which engines are
// alive and which voices they offer.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

const keyPrefix = "kokoro-tts:workers:"

// TTL is how long an announcement stays valid; workers refresh it every
// TTL/3.
const TTL = 30 * time.Second

// Worker is one worker's announcement.
type Worker struct {
	ID          string         `json:"id"` // host:pid
	Engine      tts.EngineInfo `json:"engine"`
	Concurrency int            `json:"concurrency"`
	Voices      []string       `json:"voices"`
	StartedAt   time.Time      `json:"started_at"`
	LastSeen    time.Time      `json:"last_seen"`
}

// Registry reads and writes announcements.
type Registry struct {
	rdb redis.UniversalClient
}

// NewRegistry returns a Registry on rdb.
func NewRegistry(rdb redis.UniversalClient) *Registry { return &Registry{rdb: rdb} }

// Announce records w (with LastSeen now) for TTL.
func (r *Registry) Announce(ctx context.Context, w Worker) error {
	w.LastSeen = time.Now().UTC()
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return r.rdb.Set(ctx, keyPrefix+w.ID, b, TTL).Err()
}

// Withdraw removes w's announcement (on clean shutdown).
func (r *Registry) Withdraw(ctx context.Context, id string) error {
	return r.rdb.Del(ctx, keyPrefix+id).Err()
}

// List returns the live workers, ordered by id.
func (r *Registry) List(ctx context.Context) ([]Worker, error) {
	var out []Worker
	iter := r.rdb.Scan(ctx, 0, keyPrefix+"*", 100).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var w Worker
		if json.Unmarshal([]byte(s), &w) == nil {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Run announces w every TTL/3 until ctx is done, then withdraws it.
func (r *Registry) Run(ctx context.Context, w Worker, onErr func(error)) {
	t := time.NewTicker(TTL / 3)
	defer t.Stop()
	for {
		if err := r.Announce(ctx, w); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = r.Withdraw(cctx, w.ID)
			cancel()
			return
		case <-t.C:
		}
	}
}

// Locks are short-lived mutual exclusions between workers, kept in Redis.
type Locks struct {
	rdb redis.UniversalClient
}

// NewLocks returns Locks on rdb.
func NewLocks(rdb redis.UniversalClient) *Locks { return &Locks{rdb: rdb} }

// unlock deletes the lock only if this holder still owns it.
var unlock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// TryLock takes key for ttl. ok is false when another holder has it. The
// lock expires by itself after ttl, so a crashed holder cannot block others
// for longer.
func (l *Locks) TryLock(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	token := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	ok, err = l.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return func() {}, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = unlock.Run(ctx, l.rdb, []string{key}, token).Err()
	}, true, nil
}
