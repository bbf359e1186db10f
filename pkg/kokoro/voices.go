package kokoro

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Voice pack geometry: one 256-value style row per utterance length, for
// lengths 1..510 (Kokoro v1.0, float32 [510, 1, 256]).
const (
	PackRows  = 510
	StyleDim  = 256
	packFloat = PackRows * StyleDim
	// PackBytes is the size of one raw little-endian pack file.
	PackBytes = packFloat * 4
)

// pack is one voice's styles, row-major [PackRows][StyleDim].
type pack []float32

// row returns the style for a chunk of n phoneme tokens (pads excluded):
// row n-1, the rule of the reference pipeline, clamped to the pack.
func (p pack) row(n int) []float32 {
	r := min(max(n-1, 0), PackRows-1)
	return p[r*StyleDim : (r+1)*StyleDim]
}

// loadVoices reads every voice pack at path: a folder of raw <id>.bin files
// (522,240 bytes each) or a NumPy .npz archive of <id>.npy arrays
// (voices-v1.0.bin). Any unreadable or malformed pack is an error.
func loadVoices(path string) (map[string]pack, error) {
	if path == "" {
		return nil, errors.New("voices path is empty")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var packs map[string]pack
	if fi.IsDir() {
		packs, err = loadVoiceDir(path)
	} else {
		packs, err = loadNPZ(path)
	}
	if err != nil {
		return nil, err
	}
	if len(packs) == 0 {
		return nil, fmt.Errorf("%s holds no voice packs", path)
	}
	return packs, nil
}

func loadVoiceDir(dir string) (map[string]pack, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	if err != nil {
		return nil, err
	}
	packs := make(map[string]pack, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if len(b) != PackBytes {
			return nil, fmt.Errorf("voice pack %s: %d bytes, want %d (float32 [%d,1,%d])", f, len(b), PackBytes, PackRows, StyleDim)
		}
		p, err := floatsLE(b)
		if err != nil {
			return nil, fmt.Errorf("voice pack %s: %w", f, err)
		}
		packs[strings.TrimSuffix(filepath.Base(f), ".bin")] = p
	}
	return packs, nil
}

func loadNPZ(path string) (map[string]pack, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("%s is neither a folder of <id>.bin packs nor a NumPy .npz archive: %w", path, err)
	}
	defer zr.Close()
	packs := make(map[string]pack, len(zr.File))
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, ".npy") {
			continue
		}
		id := strings.TrimSuffix(filepath.Base(zf.Name), ".npy")
		if zf.UncompressedSize64 > 2*PackBytes {
			return nil, fmt.Errorf("%s: %s: %d bytes is too large for a voice pack", path, zf.Name, zf.UncompressedSize64)
		}
		rc, err := zf.Open() // handles stored and deflated entries
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, zf.Name, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 2*PackBytes+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, zf.Name, err)
		}
		p, err := parseNPY(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, zf.Name, err)
		}
		packs[id] = p
	}
	return packs, nil
}

var (
	npyDescr   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	npyFortran = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	npyShape   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// parseNPY decodes a NumPy .npy array holding one voice pack: dtype <f4,
// C order, shape (510, 1, 256) or (510, 256).
func parseNPY(b []byte) (pack, error) {
	if len(b) < 10 || !bytes.Equal(b[:6], []byte("\x93NUMPY")) {
		return nil, errors.New("not a .npy array (bad magic)")
	}
	major := b[6]
	var hlen, off int
	switch major {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, errors.New("truncated .npy header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf("unsupported .npy format version %d", major)
	}
	if hlen > 64<<10 || off+hlen > len(b) {
		return nil, errors.New("truncated .npy header")
	}
	header := string(b[off : off+hlen])
	data := b[off+hlen:]
	m := npyDescr.FindStringSubmatch(header)
	if m == nil {
		return nil, fmt.Errorf(".npy header has no descr: %q", header)
	}
	if m[1] != "<f4" {
		return nil, fmt.Errorf(".npy dtype %q, want '<f4' (little-endian float32)", m[1])
	}
	if m := npyFortran.FindStringSubmatch(header); m == nil || m[1] != "False" {
		return nil, errors.New(".npy array must be in C order (fortran_order False)")
	}
	m = npyShape.FindStringSubmatch(header)
	if m == nil {
		return nil, fmt.Errorf(".npy header has no shape: %q", header)
	}
	var shape []int
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf(".npy shape %q: %w", m[1], err)
		}
		shape = append(shape, n)
	}
	total := 1
	for _, n := range shape {
		total *= n
	}
	if len(shape) < 2 || shape[0] != PackRows || shape[len(shape)-1] != StyleDim || total != packFloat {
		return nil, fmt.Errorf(".npy shape %v, want (%d, 1, %d)", shape, PackRows, StyleDim)
	}
	if len(data) != PackBytes {
		return nil, fmt.Errorf(".npy data is %d bytes, want %d", len(data), PackBytes)
	}
	return floatsLE(data)
}

func floatsLE(b []byte) (pack, error) {
	p := make(pack, len(b)/4)
	for i := range p {
		f := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("value %d is not finite", i)
		}
		p[i] = f
	}
	return p, nil
}

// maxBlends bounds the cache of computed voice blends.
const maxBlends = 128

// voiceBank holds the loaded packs and a bounded cache of blends.
type voiceBank struct {
	packs map[string]pack
	set   tts.VoiceSet // catalogue voices that have a pack

	mu     sync.Mutex
	limit  int // most blends kept
	blends map[string]pack
	order  []string // insertion order, oldest first, for eviction
}

func newVoiceBank(packs map[string]pack) *voiceBank {
	var vs []tts.Voice
	for _, v := range tts.Catalogue() {
		if _, ok := packs[v.ID]; ok {
			vs = append(vs, v)
		}
	}
	return &voiceBank{packs: packs, set: tts.NewVoiceSet(vs), limit: maxBlends, blends: map[string]pack{}}
}

// voices returns the catalogue voices that have a pack, in catalogue order.
func (b *voiceBank) voices() []tts.Voice {
	var out []tts.Voice
	for _, v := range tts.Catalogue() {
		if _, ok := b.set[v.ID]; ok {
			out = append(out, v)
		}
	}
	return out
}

// unknown returns the ids of packs that are not in the catalogue.
func (b *voiceBank) unknown() []string {
	var out []string
	for id := range b.packs {
		if _, ok := b.set[id]; !ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// resolve returns the pack for parsed voice weights: the pack itself for a
// single voice, else the weighted average of the packs, computed once per
// distinct blend and cached.
func (b *voiceBank) resolve(ws []tts.VoiceWeight) (pack, error) {
	if len(ws) == 0 {
		return nil, tts.Errorf(tts.EINVALID, "voice: must not be empty")
	}
	if len(ws) == 1 {
		p, ok := b.packs[ws[0].ID]
		if !ok {
			return nil, tts.Errorf(tts.EINVALID, "voice: unknown voice %q", ws[0].ID)
		}
		return p, nil
	}
	key := tts.CanonicalVoice(ws)
	b.mu.Lock()
	p, ok := b.blends[key]
	b.mu.Unlock()
	if ok {
		return p, nil
	}
	acc := make([]float64, packFloat)
	for _, w := range ws {
		src, ok := b.packs[w.ID]
		if !ok {
			return nil, tts.Errorf(tts.EINVALID, "voice: unknown voice %q", w.ID)
		}
		for i, v := range src {
			acc[i] += w.Weight * float64(v)
		}
	}
	p = make(pack, packFloat)
	for i, v := range acc {
		p[i] = float32(v)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.blends[key]; ok { // computed concurrently: keep one copy
		return q, nil
	}
	if len(b.order) >= b.limit {
		delete(b.blends, b.order[0])
		b.order = b.order[1:]
	}
	b.blends[key] = p
	b.order = append(b.order, key)
	return p, nil
}
