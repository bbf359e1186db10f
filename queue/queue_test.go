package queue

import (
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestTaskCarriesOnlyTheJobID(t *testing.T) {
	job := &tts.Job{ID: "0192d6a4-0000-7000-8000-000000000001", Text: strings.Repeat("a", 1000), Queue: tts.QueueBatch}
	task, err := NewSynthesizeTask(job)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeSynthesize || string(task.Payload()) != `{"v":1,"job_id":"0192d6a4-0000-7000-8000-000000000001"}` {
		t.Fatalf("task %s %s", task.Type(), task.Payload())
	}
	p, err := ParseSynthesize(task.Payload())
	if err != nil || p.JobID != job.ID {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	if got := queueOf(&tts.Job{Queue: "nonsense"}); got != tts.QueueInteractive {
		t.Fatalf("unknown queue maps to %q", got)
	}
	if Priorities()[tts.QueueInteractive] <= Priorities()[tts.QueueBatch] {
		t.Fatal("interactive must outrank batch")
	}
}

func TestParseRejects(t *testing.T) {
	for _, p := range []string{``, `{`, `[]`, `{"v":2,"job_id":"x"}`, `{"v":1}`, `{"v":1,"job_id":""}`} {
		if _, err := ParseSynthesize([]byte(p)); tts.ErrorCode(err) != tts.EINVALID {
			t.Fatalf("payload %q: %v", p, err)
		}
	}
}

func TestTimeoutGrowsWithTextAndIsCapped(t *testing.T) {
	if Timeout(0) != 2*time.Minute || Timeout(20000) <= Timeout(1000) || Timeout(1_000_000) != time.Hour {
		t.Fatalf("timeouts: %v %v %v", Timeout(0), Timeout(20000), Timeout(1_000_000))
	}
}
