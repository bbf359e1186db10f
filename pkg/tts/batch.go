package tts

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Bounds of a batch.
const (
	// MaxBatchItems is the most items one batch may hold.
	MaxBatchItems = 10000
	// MaxBatchKeyLen is the longest item key, in bytes.
	MaxBatchKeyLen = 128
	// MaxBatchItemErrors is how many item errors a rejected batch lists.
	MaxBatchItemErrors = 20
	// MaxCallbackURLLen bounds a batch's callback URL.
	MaxCallbackURLLen = 2048
)

// BatchStatus is the state of a batch as stored. Together with its items'
// states it gives the status a client sees (see Batch.State).
type BatchStatus string

// Batch states. The stored values are BatchRunning and BatchCanceled;
// BatchCompleted is derived when every item is terminal. Never rename them:
// they are stored and shown to clients.
const (
	BatchRunning   BatchStatus = "running"
	BatchCompleted BatchStatus = "completed"
	BatchCanceled  BatchStatus = "canceled"
)

// Batch is a group of synthesis jobs submitted together (lesson
// pre-generation). Its items are ordinary jobs on the batch queue that carry
// the batch's id and the caller's key for the item.
type Batch struct {
	ID     string
	Status BatchStatus // stored: BatchRunning or BatchCanceled
	Items  int         // number of items (jobs)
	// Defaults the items were validated with (after the service defaults).
	Voice          string
	Speed          float64
	Format         Format
	CallbackURL    string // where batch events are to be POSTed (webhooks); stored only
	IdempotencyKey string
	RequestHash    string // hash of the validated request, to detect a reused idempotency key
	UserID         string // the account that submitted it, "" when the API ran open
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Counts holds how many items are in each job state; every state is
	// present. The store fills it on reads.
	Counts map[JobStatus]int
}

// Finished returns how many items are terminal.
func (b *Batch) Finished() int {
	return b.Counts[StatusSucceeded] + b.Counts[StatusFailed] + b.Counts[StatusCanceled]
}

// Done reports whether every item is terminal.
func (b *Batch) Done() bool { return b.Finished() >= b.Items }

// State is the status a client sees: canceled once cancel was asked for,
// completed when every item is terminal (whatever their outcomes), running
// otherwise.
func (b *Batch) State() BatchStatus {
	switch {
	case b.Status == BatchCanceled:
		return BatchCanceled
	case b.Done():
		return BatchCompleted
	}
	return BatchRunning
}

// BatchItem is one item of a batch: the caller's key and its job.
type BatchItem struct {
	Key string
	Job *Job
}

// BatchItemRequest is one item of a batch request as a client sends it.
// Empty fields take the batch's defaults.
type BatchItemRequest struct {
	Key    string
	Text   string
	Voice  string
	Speed  *float64
	Format string
}

// BatchRequest is a batch as a client sends it. Voice, Speed and Format are
// the defaults of its items.
type BatchRequest struct {
	Items       []BatchItemRequest
	Voice       string
	Speed       *float64
	Format      string
	CallbackURL string
}

// ValidatedBatchItem is an item after defaults and validation.
type ValidatedBatchItem struct {
	Key string
	Validated
}

// ValidatedBatch is a batch request after defaults and validation. Every
// item's Queue is QueueBatch.
type ValidatedBatch struct {
	Items       []ValidatedBatchItem
	Voice       string
	Speed       float64
	Format      Format
	CallbackURL string
}

// BatchItemError is what is wrong with one item.
type BatchItemError struct {
	Index   int
	Key     string
	Message string // client-safe, names the field
}

// String formats the error as `items[3] (key "l-4"): speed: ...`.
func (e BatchItemError) String() string {
	return fmt.Sprintf("items[%d] (key %q): %s", e.Index, clip(e.Key), e.Message)
}

// BatchError rejects a batch whose items are invalid. It lists the first
// MaxBatchItemErrors item errors; Total counts them all. Through Unwrap it is
// an EINVALID *Error whose message holds the list, so ErrorCode and
// ErrorMessage work on it.
type BatchError struct {
	Items []BatchItemError
	Total int
}

// Error implements error.
func (e *BatchError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the EINVALID *Error that describes e.
func (e *BatchError) Unwrap() error {
	parts := make([]string, len(e.Items))
	for i, it := range e.Items {
		parts[i] = it.String()
	}
	msg := fmt.Sprintf("%d of the items are invalid: %s", e.Total, strings.Join(parts, "; "))
	if e.Total == 1 {
		msg = "1 item is invalid: " + parts[0]
	}
	if e.Total > len(e.Items) {
		msg += fmt.Sprintf("; and %d more", e.Total-len(e.Items))
	}
	return Errorf(EINVALID, "%s", msg)
}

// ValidBatchKey reports whether key may name an item: 1 to MaxBatchKeyLen
// ASCII letters, digits, '.', '_' or '-', not starting with a dot. Such a key
// is safe as a file name on every common file system (it is the item's name
// in the batch archive).
func ValidBatchKey(key string) bool {
	if key == "" || len(key) > MaxBatchKeyLen || key[0] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidCallbackURL checks a callback URL: absolute http or https with a
// host, at most MaxCallbackURLLen bytes. Errors are EINVALID.
func ValidCallbackURL(s string) error {
	if len(s) > MaxCallbackURLLen {
		return Errorf(EINVALID, "callback_url: at most %d characters", MaxCallbackURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "" {
		return Errorf(EINVALID, "callback_url: must be an absolute http or https URL with a host")
	}
	return nil
}

// Validate applies the batch defaults (then the service defaults) to every
// item and checks them all. Batch-level fields are checked first and their
// errors are plain EINVALID errors naming the field; item errors are
// collected and returned together as a *BatchError (EINVALID). An item's
// text that is too long is an item error like any other. Duplicate keys are
// an error of the later item.
func (r BatchRequest) Validate(l Limits) (ValidatedBatch, error) {
	var out ValidatedBatch
	if n := len(r.Items); n == 0 || n > MaxBatchItems {
		return out, Errorf(EINVALID, "items: must hold 1 to %d items, not %d", MaxBatchItems, n)
	}
	// The defaults are validated as a request of their own, so that their
	// errors name the batch's field, not every item.
	def, err := Request{Text: "x", Voice: r.Voice, Speed: r.Speed, Format: r.Format, Queue: QueueBatch}.Validate(l)
	if err != nil {
		return out, err
	}
	out = ValidatedBatch{Voice: def.Voice, Speed: def.Speed, Format: def.Format, CallbackURL: strings.TrimSpace(r.CallbackURL)}
	if out.CallbackURL != "" {
		if err := ValidCallbackURL(out.CallbackURL); err != nil {
			return ValidatedBatch{}, err
		}
	}
	be := &BatchError{}
	add := func(i int, key, msg string) {
		be.Total++
		if len(be.Items) < MaxBatchItemErrors {
			be.Items = append(be.Items, BatchItemError{Index: i, Key: key, Message: msg})
		}
	}
	seen := make(map[string]int, len(r.Items))
	out.Items = make([]ValidatedBatchItem, 0, len(r.Items))
	for i, it := range r.Items {
		if !ValidBatchKey(it.Key) {
			add(i, it.Key, fmt.Sprintf("key: must be 1 to %d letters, digits, '.', '_' or '-', not starting with '.'", MaxBatchKeyLen))
			continue
		}
		if j, dup := seen[it.Key]; dup {
			add(i, it.Key, fmt.Sprintf("key: duplicates items[%d]; keys must be unique within a batch", j))
			continue
		}
		seen[it.Key] = i
		req := Request{Text: it.Text, Voice: it.Voice, Speed: it.Speed, Format: it.Format, Queue: QueueBatch}
		if strings.TrimSpace(req.Voice) == "" {
			req.Voice = out.Voice
		}
		if req.Speed == nil {
			s := out.Speed
			req.Speed = &s
		}
		if strings.TrimSpace(req.Format) == "" {
			req.Format = string(out.Format)
		}
		v, err := req.Validate(l)
		if err != nil {
			add(i, it.Key, ErrorMessage(err))
			continue
		}
		out.Items = append(out.Items, ValidatedBatchItem{Key: it.Key, Validated: v})
	}
	if be.Total > 0 {
		return ValidatedBatch{}, be
	}
	return out, nil
}

// BatchStore persists batches. Items are jobs (see JobStore) that carry the
// batch's id and their key; the job methods run them.
type BatchStore interface {
	// CreateBatch inserts the batch and its items' jobs (each queued, with
	// BatchID set to batch.ID) in one transaction: all or nothing. It
	// returns the stored batch with its counts. When batch.IdempotencyKey is
	// already used it returns that batch and created=false (ECONFLICT if
	// its RequestHash differs). EINVALID for a batch without items, a
	// duplicate or invalid key or a job the JobStore would refuse;
	// ECONFLICT when an id exists; EUNAVAILABLE when the database is down.
	CreateBatch(ctx context.Context, batch *Batch, items []BatchItem) (stored *Batch, created bool, err error)

	// FindBatch returns a batch with its counts (ENOTFOUND).
	FindBatch(ctx context.Context, id string) (*Batch, error)

	// BatchItems returns up to limit items of a batch in submission order,
	// after the item whose job id is `after` ("" for the first). ENOTFOUND
	// when the batch does not exist.
	BatchItems(ctx context.Context, id, after string, limit int) ([]BatchItem, error)

	// LiveBatchItems is BatchItems restricted to items still queued or
	// running.
	LiveBatchItems(ctx context.Context, id, after string, limit int) ([]BatchItem, error)

	// CancelBatch marks a batch canceled and returns it; its items are
	// canceled one by one through the JobStore. Canceling a canceled batch
	// is harmless. ENOTFOUND.
	CancelBatch(ctx context.Context, id string) (*Batch, error)
}
