package kokoro

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// worker owns one session and the RunOptions used to terminate its calls.
// Sessions are not shared, so each has its own intra-op thread pool.
type worker struct {
	sess *ort.DynamicAdvancedSession
	ro   *ort.RunOptions
}

// item is one chunk waiting for, or in, a model call.
type item struct {
	ctx    context.Context
	ids    []int64 // [0, ids..., 0]
	style  []float32
	speed  float32
	reply  chan result  // used when onDone is nil
	onDone func(result) // must not block
}

type result struct {
	out ChunkOutput
	err error
}

func (it *item) finish(r result) {
	if it.onDone != nil {
		it.onDone(r)
		return
	}
	it.reply <- r
}

// newItem pads ids and picks the style row for their length from p.
func (e *Engine) newItem(ctx context.Context, ids []int64, p pack, speed float32) *item {
	padded := make([]int64, len(ids)+2)
	copy(padded[1:], ids)
	return &item{ctx: ctx, ids: padded, style: p.row(len(ids)), speed: speed, reply: make(chan result, 1)}
}

func (e *Engine) submit(ctx context.Context, it *item) error {
	select {
	case <-e.quit:
		return errClosed
	default:
	}
	select {
	case e.queue <- it:
		return nil
	case <-ctx.Done():
		return canceled(ctx.Err())
	case <-e.quit:
		return errClosed
	}
}

// work serves the queue with one session. For a batch-capable model it takes
// every chunk already queued (up to maxBatch, optionally waiting
// BatchWindow for more) into one call; otherwise one chunk per call.
func (e *Engine) work(w *worker) {
	defer e.wg.Done()
	for {
		var first *item
		select {
		case <-e.quit:
			return
		case first = <-e.queue:
		}
		batch := []*item{first}
		if e.maxBatch > 1 {
			batch = e.collect(batch)
		}
		e.runBatch(w, batch)
	}
}

func (e *Engine) collect(batch []*item) []*item {
	var timeout <-chan time.Time
	if e.window > 0 {
		t := time.NewTimer(e.window)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < e.maxBatch {
		if timeout == nil {
			select {
			case it := <-e.queue:
				batch = append(batch, it)
				continue
			default:
				return batch
			}
		}
		select {
		case it := <-e.queue:
			batch = append(batch, it)
		case <-timeout:
			return batch
		case <-e.quit:
			return batch
		}
	}
	return batch
}

// runBatch makes one model call for the live items of batch and answers
// every item. Canceling the contexts of all its items terminates the call.
func (e *Engine) runBatch(w *worker, batch []*item) {
	live := batch[:0:0]
	for _, it := range batch {
		if err := it.ctx.Err(); err != nil {
			it.finish(result{err: canceled(err)})
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	runCtx, stopWatch := allDone(live)
	defer stopWatch()

	inputs, err := e.inputs(live)
	defer destroyAll(inputs)
	if err != nil {
		failAll(live, fmt.Errorf("kokoro: build inputs: %w", err))
		return
	}
	outputs := make([]ort.Value, len(e.sig.outputs))
	defer func() { destroyAll(outputs) }()

	e.runs.Add(1)
	e.chunks.Add(int64(len(live)))
	for {
		m := e.maxSeen.Load()
		if int64(len(live)) <= m || e.maxSeen.CompareAndSwap(m, int64(len(live))) {
			break
		}
	}
	if e.beforeRun != nil {
		e.beforeRun(len(live))
	}

	// Terminate the call when every item's context is canceled. If the
	// watcher fired, wait for it and clear the flag so the RunOptions can be
	// reused.
	fired := make(chan struct{})
	stop := context.AfterFunc(runCtx, func() {
		w.ro.Terminate()
		close(fired)
	})
	err = w.sess.RunWithOptions(inputs, outputs, w.ro)
	if !stop() {
		<-fired
		w.ro.UnsetTerminate()
	}
	if err != nil {
		if runCtx.Err() != nil {
			e.terminated.Add(1)
		}
		select {
		case <-e.quit:
			failAll(live, errClosed)
			return
		default:
		}
		for _, it := range live {
			if cerr := it.ctx.Err(); cerr != nil {
				it.finish(result{err: canceled(cerr)})
			} else {
				it.finish(result{err: fmt.Errorf("kokoro: model run: %w", err)})
			}
		}
		return
	}
	outs, err := e.split(outputs, live)
	if err != nil {
		failAll(live, fmt.Errorf("kokoro: model output: %w", err))
		return
	}
	for i, it := range live {
		it.finish(result{out: outs[i]})
	}
}

// inputs builds the call's tensors in the session's input order.
func (e *Engine) inputs(items []*item) ([]ort.Value, error) {
	b := int64(len(items))
	n := int64(0)
	for _, it := range items {
		n = max(n, int64(len(it.ids)))
	}
	ids := make([]int64, b*n) // rows padded with 0, the pad token
	lengths := make([]int64, b)
	style := make([]float32, 0, b*StyleDim)
	speedF := make([]float32, b)
	speedI := make([]int32, b)
	for i, it := range items {
		copy(ids[int64(i)*n:], it.ids)
		lengths[i] = int64(len(it.ids))
		style = append(style, it.style...)
		speedF[i] = it.speed
		speedI[i] = int32(max(math.Round(float64(it.speed)), 1))
	}
	vals := make([]ort.Value, 0, 4)
	add := func(v ort.Value, err error) error {
		if err != nil {
			return err
		}
		vals = append(vals, v)
		return nil
	}
	if err := add(newTensor(ort.NewShape(b, n), ids)); err != nil {
		return vals, err
	}
	if err := add(newTensor(ort.NewShape(b, StyleDim), style)); err != nil {
		return vals, err
	}
	var err error
	if e.sig.speedInt32 {
		err = add(newTensor(ort.NewShape(b), speedI))
	} else {
		err = add(newTensor(ort.NewShape(b), speedF))
	}
	if err != nil {
		return vals, err
	}
	if e.sig.batch() {
		if err := add(newTensor(ort.NewShape(b), lengths)); err != nil {
			return vals, err
		}
	}
	return vals, nil
}

func newTensor[T ort.TensorData](s ort.Shape, data []T) (ort.Value, error) {
	t, err := ort.NewTensor(s, data)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// split reads the call's outputs into one ChunkOutput per item. Stock
// exports return one sequence: all of the audio. Batch models return
// [B, S] rows cut by output_lengths.
func (e *Engine) split(outputs []ort.Value, items []*item) ([]ChunkOutput, error) {
	var audio *ort.Tensor[float32]
	var durations, lengths ort.Value
	for i, name := range e.sig.outputs {
		switch name {
		case e.sig.audio:
			t, ok := outputs[i].(*ort.Tensor[float32])
			if !ok {
				return nil, fmt.Errorf("%s is %T, want float32 tensor", name, outputs[i])
			}
			audio = t
		case e.sig.duration:
			durations = outputs[i]
		case e.sig.outLengths:
			lengths = outputs[i]
		}
	}
	if audio == nil {
		return nil, errNoAudio
	}
	data := audio.GetData()
	shape := audio.GetShape()
	outs := make([]ChunkOutput, len(items))
	if !e.sig.batch() {
		if len(items) != 1 {
			return nil, fmt.Errorf("%d items in a call to a batch-size-1 model", len(items))
		}
		if len(shape) == 2 && shape[0] != 1 {
			return nil, fmt.Errorf("%s shape %v, want [1, samples]", e.sig.audio, shape)
		}
		outs[0].Samples = append([]float32(nil), data...)
		if durations != nil {
			outs[0].Durations = intsOf(durations)
		}
		return outs, nil
	}
	b := int64(len(items))
	if len(shape) != 2 || shape[0] != b {
		return nil, fmt.Errorf("%s shape %v, want [%d, samples]", e.sig.audio, shape, b)
	}
	lens := intsOf(lengths)
	if int64(len(lens)) != b {
		return nil, fmt.Errorf("output_lengths has %d values, want %d", len(lens), b)
	}
	s := shape[1]
	var durs []int64
	var dn int64
	if durations != nil {
		if ds := durations.GetShape(); len(ds) == 2 && ds[0] == b {
			durs, dn = intsOf(durations), ds[1]
		}
	}
	for i := range items {
		l := lens[i]
		if l < 0 || l > s {
			return nil, fmt.Errorf("output_lengths[%d] = %d outside [0, %d]", i, l, s)
		}
		row := data[int64(i)*s : int64(i)*s+l]
		outs[i].Samples = append([]float32(nil), row...)
		if durs != nil {
			n := min(int64(len(items[i].ids)), dn)
			outs[i].Durations = append([]int64(nil), durs[int64(i)*dn:int64(i)*dn+n]...)
		}
	}
	return outs, nil
}

// intsOf returns an integer or float tensor's values as int64.
func intsOf(v ort.Value) []int64 {
	switch t := v.(type) {
	case *ort.Tensor[int64]:
		return append([]int64(nil), t.GetData()...)
	case *ort.Tensor[int32]:
		out := make([]int64, len(t.GetData()))
		for i, x := range t.GetData() {
			out[i] = int64(x)
		}
		return out
	case *ort.Tensor[float32]:
		out := make([]int64, len(t.GetData()))
		for i, x := range t.GetData() {
			out[i] = int64(math.Round(float64(x)))
		}
		return out
	}
	return nil
}

func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			v.Destroy()
		}
	}
}

func failAll(items []*item, err error) {
	for _, it := range items {
		it.finish(result{err: err})
	}
}

// allDone returns a context canceled once every item's context is, so that
// a batch call stops only when none of its chunks is wanted any more.
func allDone(items []*item) (context.Context, func()) {
	if len(items) == 1 {
		return items[0].ctx, func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	left := atomic.Int64{}
	left.Store(int64(len(items)))
	stops := make([]func() bool, len(items))
	for i, it := range items {
		stops[i] = context.AfterFunc(it.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}
