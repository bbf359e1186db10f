package tts

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func items(n int) []BatchItemRequest {
	out := make([]BatchItemRequest, n)
	for i := range out {
		out[i] = BatchItemRequest{Key: fmt.Sprintf("l-%d", i+1), Text: fmt.Sprintf("Line %d.", i+1)}
	}
	return out
}

func TestBatchValidateDefaults(t *testing.T) {
	fast, slow := 1.5, 0.8
	r := BatchRequest{Items: items(3), Voice: "af_sky", Speed: &fast, Format: "wav", CallbackURL: "https://example.com/hook"}
	r.Items[1].Voice, r.Items[1].Speed, r.Items[1].Format = "am_adam", &slow, "flac"
	v, err := r.Validate(Limits{Voices: NewVoiceSet(Catalogue())})
	if err != nil {
		t.Fatal(err)
	}
	if v.Voice != "af_sky" || v.Speed != 1.5 || v.Format != FormatWAV || v.CallbackURL != "https://example.com/hook" || len(v.Items) != 3 {
		t.Fatalf("batch %+v", v)
	}
	a, b := v.Items[0], v.Items[1]
	if a.Key != "l-1" || a.Voice != "af_sky" || a.Speed != 1.5 || a.Format != FormatWAV || a.Queue != QueueBatch {
		t.Fatalf("item with defaults %+v", a)
	}
	if b.Voice != "am_adam" || b.Speed != 0.8 || b.Format != FormatFLAC || b.Queue != QueueBatch {
		t.Fatalf("item overriding defaults %+v", b)
	}
	// No batch defaults: the service defaults.
	v, err = BatchRequest{Items: items(1)}.Validate(Limits{})
	if err != nil || v.Items[0].Voice != DefaultVoice || v.Items[0].Speed != DefaultSpeed || v.Items[0].Format != DefaultFormat {
		t.Fatalf("service defaults: %+v %v", v, err)
	}
}

func TestBatchValidateErrors(t *testing.T) {
	bad := 9.0
	l := Limits{MaxTextChars: 50, Voices: NewVoiceSet(Catalogue())}
	cases := []struct {
		name string
		req  func() BatchRequest
		want []string
	}{
		{"no items", func() BatchRequest { return BatchRequest{} }, []string{"items: must hold 1 to 10000 items, not 0"}},
		{"too many", func() BatchRequest { return BatchRequest{Items: items(MaxBatchItems + 1)} }, []string{"not 10001"}},
		{"bad default voice", func() BatchRequest { return BatchRequest{Items: items(2), Voice: "zz_x"} }, []string{"voice: unknown voice"}},
		{"bad default format", func() BatchRequest { return BatchRequest{Items: items(2), Format: "ogg"} }, []string{"format:"}},
		{"callback scheme", func() BatchRequest { return BatchRequest{Items: items(1), CallbackURL: "ftp://x/y"} }, []string{"callback_url:"}},
		{"callback no host", func() BatchRequest { return BatchRequest{Items: items(1), CallbackURL: "http:///path"} }, []string{"callback_url:"}},
		{"callback relative", func() BatchRequest { return BatchRequest{Items: items(1), CallbackURL: "/hook"} }, []string{"callback_url:"}},
		{"item speed", func() BatchRequest {
			r := BatchRequest{Items: items(5)}
			r.Items[3].Speed = &bad
			return r
		}, []string{`1 item is invalid: items[3] (key "l-4"): speed: must be a number from 0.5 to 2.0`}},
		{"duplicate key", func() BatchRequest {
			r := BatchRequest{Items: items(4)}
			r.Items[3].Key = "l-2"
			return r
		}, []string{`items[3] (key "l-2"): key: duplicates items[1]`}},
		{"bad keys", func() BatchRequest {
			r := BatchRequest{Items: items(5)}
			r.Items[0].Key, r.Items[1].Key, r.Items[2].Key, r.Items[3].Key = "", ".hidden", "a/b", strings.Repeat("k", 129)
			return r
		}, []string{"4 of the items are invalid", `items[0] (key "")`, `items[1] (key ".hidden")`, `items[2] (key "a/b")`, "items[3]"}},
		{"text", func() BatchRequest {
			r := BatchRequest{Items: items(3)}
			r.Items[0].Text, r.Items[2].Text = " ", strings.Repeat("a", 51)
			return r
		}, []string{`items[0] (key "l-1"): text: must contain`, `items[2] (key "l-3"): text: 51 characters`}},
		{"item voice", func() BatchRequest {
			r := BatchRequest{Items: items(2)}
			r.Items[1].Voice = "nobody"
			return r
		}, []string{`items[1] (key "l-2"): voice: unknown voice "nobody"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.req().Validate(l)
			if ErrorCode(err) != EINVALID {
				t.Fatalf("code %q (%v)", ErrorCode(err), err)
			}
			for _, w := range c.want {
				if !strings.Contains(ErrorMessage(err), w) {
					t.Fatalf("message %q lacks %q", ErrorMessage(err), w)
				}
			}
		})
	}
}

// TestBatchValidateManyItemErrors: 10,000 items, every one invalid: the
// error lists the first 20 and counts them all.
func TestBatchValidateManyItemErrors(t *testing.T) {
	r := BatchRequest{Items: items(MaxBatchItems)}
	for i := range r.Items {
		r.Items[i].Format = "ogg"
	}
	_, err := r.Validate(Limits{})
	var be *BatchError
	if !errors.As(err, &be) || be.Total != MaxBatchItems || len(be.Items) != MaxBatchItemErrors {
		t.Fatalf("err %v", err)
	}
	if be.Items[19].Index != 19 || !strings.Contains(ErrorMessage(err), "and 9980 more") {
		t.Fatalf("message %q", ErrorMessage(err))
	}
	// And a full valid batch passes.
	v, err := BatchRequest{Items: items(MaxBatchItems)}.Validate(Limits{Voices: NewVoiceSet(Catalogue())})
	if err != nil || len(v.Items) != MaxBatchItems {
		t.Fatalf("%d items, %v", len(v.Items), err)
	}
}

func TestValidBatchKey(t *testing.T) {
	for _, k := range []string{"a", "lesson-1.line_2", "A.B", "_x", "-x", strings.Repeat("k", 128)} {
		if !ValidBatchKey(k) {
			t.Errorf("%q refused", k)
		}
	}
	for _, k := range []string{"", ".", "..", ".x", "a/b", `a\b`, "a b", "é", "a\x00", strings.Repeat("k", 129), "a:b"} {
		if ValidBatchKey(k) {
			t.Errorf("%q accepted", k)
		}
	}
}

func TestBatchState(t *testing.T) {
	b := &Batch{Items: 3, Status: BatchRunning, Counts: map[JobStatus]int{StatusQueued: 1, StatusSucceeded: 1, StatusFailed: 1}}
	if b.State() != BatchRunning || b.Finished() != 2 || b.Done() {
		t.Fatal(b.State())
	}
	b.Counts[StatusQueued], b.Counts[StatusCanceled] = 0, 1
	if b.State() != BatchCompleted || !b.Done() {
		t.Fatal(b.State())
	}
	b.Status = BatchCanceled
	if b.State() != BatchCanceled {
		t.Fatal(b.State())
	}
}
