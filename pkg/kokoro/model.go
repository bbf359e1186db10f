package kokoro

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// signature is what the engine learned from the model's own inputs and
// outputs. Every public Kokoro export differs only in names, the speed type
// and the rank of the audio output; a model with `input_lengths` is a
// batch-capable re-export with the contract documented on Config.
type signature struct {
	ids        string // "tokens" or "input_ids": int64 [B,N]
	style      string // float32 [B,256]
	speed      string // float32 or int32 [B]
	speedInt32 bool
	lengths    string // "input_lengths" int64 [B], batch models only

	audio      string // "audio" or "waveform": float32 [S] or [B,S]
	duration   string // optional per-token frames
	outLengths string // "output_lengths" int64 [B], batch models only

	inputs  []string // in the order the session was created with
	outputs []string
}

func (s signature) batch() bool { return s.lengths != "" }

func (s signature) String() string {
	sp := "float32"
	if s.speedInt32 {
		sp = "int32"
	}
	out := fmt.Sprintf("inputs %s/%s/%s(%s)", s.ids, s.style, s.speed, sp)
	if s.batch() {
		out += "/" + s.lengths
	}
	out += " outputs " + strings.Join(s.outputs, "/")
	return out
}

func describe(infos []ort.InputOutputInfo) string {
	s := make([]string, len(infos))
	for i := range infos {
		s[i] = infos[i].String()
	}
	return strings.Join(s, "; ")
}

// detectSignature maps a model's inputs and outputs onto the exports listed
// in FACTS.md. Anything it cannot feed or read is an error naming what the
// model has.
func detectSignature(ins, outs []ort.InputOutputInfo) (signature, error) {
	var s signature
	bad := func(format string, args ...any) (signature, error) {
		return signature{}, fmt.Errorf("unsupported Kokoro model (%s | %s): %s", describe(ins), describe(outs), fmt.Sprintf(format, args...))
	}
	for _, in := range ins {
		if in.OrtValueType != ort.ONNXTypeTensor {
			return bad("input %q is not a tensor", in.Name)
		}
		switch in.Name {
		case "tokens", "input_ids":
			if s.ids != "" {
				return bad("both tokens and input_ids inputs")
			}
			if in.DataType != ort.TensorElementDataTypeInt64 || len(in.Dimensions) != 2 {
				return bad("%s must be int64 [batch, sequence]", in.Name)
			}
			s.ids = in.Name
		case "style", "ref_s":
			if in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 2 ||
				(in.Dimensions[1] > 0 && in.Dimensions[1] != StyleDim) {
				return bad("%s must be float32 [batch, %d]", in.Name, StyleDim)
			}
			s.style = in.Name
		case "speed":
			switch in.DataType {
			case ort.TensorElementDataTypeFloat:
			case ort.TensorElementDataTypeInt32:
				s.speedInt32 = true
			default:
				return bad("speed must be float32 or int32")
			}
			if len(in.Dimensions) != 1 {
				return bad("speed must be rank 1 [batch]")
			}
			s.speed = in.Name
		case "input_lengths":
			if in.DataType != ort.TensorElementDataTypeInt64 || len(in.Dimensions) != 1 {
				return bad("input_lengths must be int64 [batch]")
			}
			s.lengths = in.Name
		default:
			return bad("unknown input %q", in.Name)
		}
	}
	if s.ids == "" || s.style == "" || s.speed == "" {
		return bad("need an ids input (tokens or input_ids), style and speed")
	}
	for _, out := range outs {
		switch out.Name {
		case "audio", "waveform":
			if s.audio != "" {
				return bad("both audio and waveform outputs")
			}
			if out.DataType != ort.TensorElementDataTypeFloat || len(out.Dimensions) < 1 || len(out.Dimensions) > 2 {
				return bad("%s must be float32 [samples] or [batch, samples]", out.Name)
			}
			s.audio = out.Name
		case "duration", "durations", "pred_dur":
			if s.duration == "" {
				s.duration = out.Name
			}
		case "output_lengths":
			if out.DataType != ort.TensorElementDataTypeInt64 || len(out.Dimensions) != 1 {
				return bad("output_lengths must be int64 [batch]")
			}
			s.outLengths = out.Name
		}
	}
	if s.audio == "" {
		return bad("need an audio or waveform output")
	}
	if s.batch() && s.outLengths == "" {
		return bad("a model with input_lengths must also output output_lengths (valid samples per row)")
	}
	s.inputs = []string{s.ids, s.style, s.speed}
	if s.batch() {
		s.inputs = append(s.inputs, s.lengths)
	}
	s.outputs = []string{s.audio}
	if s.duration != "" {
		s.outputs = append(s.outputs, s.duration)
	}
	if s.outLengths != "" {
		s.outputs = append(s.outputs, s.outLengths)
	}
	return s, nil
}

// readSignature reads the model's inputs and outputs through a throwaway
// session with graph optimisations off, which keeps it cheap.
func readSignature(path string) (signature, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return signature{}, err
	}
	defer opts.Destroy()
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return signature{}, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(path, opts)
	if err != nil {
		return signature{}, err
	}
	return detectSignature(ins, outs)
}

// modelVocab returns the vocab stored in the model's metadata under
// `kokoro_config` (thewh1teagle v1.1 exports do this), or nil.
func modelVocab(sess *ort.DynamicAdvancedSession) (map[rune]int64, error) {
	md, err := sess.GetModelMetadata()
	if err != nil {
		return nil, err
	}
	defer md.Destroy()
	raw, ok, err := md.LookupCustomMetadataMap("kokoro_config")
	if err != nil || !ok {
		return nil, err
	}
	return parseVocab([]byte(raw))
}

// parseVocab reads the vocab of a Kokoro config.json: one code point per
// symbol, ids in [0, n_token).
func parseVocab(configJSON []byte) (map[rune]int64, error) {
	var cfg struct {
		Vocab map[string]int64 `json:"vocab"`
	}
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("kokoro_config metadata: %w", err)
	}
	if len(cfg.Vocab) == 0 {
		return nil, nil
	}
	v := make(map[rune]int64, len(cfg.Vocab))
	for sym, id := range cfg.Vocab {
		r := []rune(sym)
		if len(r) != 1 || id <= 0 {
			return nil, fmt.Errorf("kokoro_config metadata: vocab entry %q=%d is not one symbol with a positive id", sym, id)
		}
		v[r[0]] = id
	}
	return v, nil
}

func sameVocab(a, b map[rune]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// modelName returns "<file>@<first 12 hex digits of its sha256>".
func modelName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return filepath.Base(path) + "@" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// countMemcpy counts the copy nodes ONNX Runtime inserted between devices in
// an optimised model it saved: each is a host<->GPU transfer on every run, the
// known weakness of the stock exports on the CUDA provider. The op types are
// plain strings in the protobuf, so a byte search is enough for a log line.
func countMemcpy(optimizedPath string) (int, error) {
	b, err := os.ReadFile(optimizedPath)
	if err != nil {
		return 0, err
	}
	return bytes.Count(b, []byte("MemcpyToHost")) + bytes.Count(b, []byte("MemcpyFromHost")), nil
}

// cudaOptions are the CUDA provider settings the engine applies.
func cudaOptions(deviceID int, memLimit int64) map[string]string {
	o := map[string]string{
		"device_id":                 strconv.Itoa(deviceID),
		"arena_extend_strategy":     "kSameAsRequested", // grow by what a run needs, not powers of two
		"cudnn_conv_algo_search":    "HEURISTIC",        // EXHAUSTIVE re-searches on every new input length
		"do_copy_in_default_stream": "1",
	}
	if memLimit > 0 {
		o["gpu_mem_limit"] = strconv.FormatInt(memLimit, 10)
	}
	return o
}

// sessionSpec says how to build one session.
type sessionSpec struct {
	path        string
	sig         signature
	cuda        bool
	deviceID    int
	memLimit    int64
	threads     int
	optimizedTo string // when set, ORT saves the optimised model here
}

func newSession(sp sessionSpec) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(sp.threads); err != nil {
		return nil, err
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if sp.optimizedTo != "" {
		if err := opts.SetOptimizedModelFilePath(sp.optimizedTo); err != nil {
			return nil, err
		}
	}
	if sp.cuda {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("CUDA provider options: %w", err)
		}
		defer co.Destroy()
		if err := co.Update(cudaOptions(sp.deviceID, sp.memLimit)); err != nil {
			return nil, fmt.Errorf("CUDA provider options: %w", err)
		}
		if err := opts.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("append CUDA execution provider: %w", err)
		}
	}
	s, err := ort.NewDynamicAdvancedSession(sp.path, sp.sig.inputs, sp.sig.outputs, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var errNoAudio = errors.New("model returned no audio")
