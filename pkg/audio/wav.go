package audio

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// wavHeaderSize is the size of the canonical 44-byte PCM WAV header.
const wavHeaderSize = 44

// maxWAVSamples keeps the RIFF size field (uint32) from overflowing.
const maxWAVSamples = (math.MaxUint32 - wavHeaderSize) / 2

// WriteWAV writes p as a mono 16-bit PCM WAV file at p's sample rate and
// returns the bytes written. Samples are clipped to [-1, 1] (NaN becomes 0)
// before the conversion to int16.
func WriteWAV(w io.Writer, p tts.PCM) (int64, error) {
	if p.SampleRate <= 0 {
		return 0, tts.Errorf(tts.EINVALID, "audio: invalid sample rate %d", p.SampleRate)
	}
	if len(p.Samples) > maxWAVSamples {
		return 0, tts.Errorf(tts.EINVALID, "audio: %d samples are too many for a WAV file", len(p.Samples))
	}
	data := uint32(2 * len(p.Samples))
	var h [wavHeaderSize]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+data)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)                     // fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)                      // PCM
	binary.LittleEndian.PutUint16(h[22:], 1)                      // channels
	binary.LittleEndian.PutUint32(h[24:], uint32(p.SampleRate))   // sample rate
	binary.LittleEndian.PutUint32(h[28:], uint32(p.SampleRate)*2) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 2)                      // block align
	binary.LittleEndian.PutUint16(h[34:], 16)                     // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], data)
	n, err := w.Write(h[:])
	if err != nil {
		return int64(n), err
	}
	m, err := io.Copy(w, newS16Reader(p.Samples))
	return int64(n) + m, err
}

// DecodeWAV parses a mono or multichannel WAV file holding 8-, 16-, 24- or
// 32-bit integer PCM or 32-bit float samples and returns it as mono PCM
// (channels averaged). A data chunk whose declared size runs past the end of
// the input is read to the end: streaming writers such as `espeak-ng
// --stdout` cannot know the size and write a placeholder.
func DecodeWAV(b []byte) (tts.PCM, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return tts.PCM{}, fmt.Errorf("audio: not a RIFF/WAVE file")
	}
	var (
		format, channels, bits uint16
		rate                   uint32
		haveFmt                bool
	)
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := int64(off + 8)
		end := body + size
		if end > int64(len(b)) {
			end = int64(len(b))
		}
		switch id {
		case "fmt ":
			if end-body < 16 {
				return tts.PCM{}, fmt.Errorf("audio: WAV fmt chunk too short")
			}
			f := b[body:end]
			format = binary.LittleEndian.Uint16(f[0:])
			channels = binary.LittleEndian.Uint16(f[2:])
			rate = binary.LittleEndian.Uint32(f[4:])
			bits = binary.LittleEndian.Uint16(f[14:])
			if format == 0xFFFE && len(f) >= 26 { // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real tag
				format = binary.LittleEndian.Uint16(f[24:])
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return tts.PCM{}, fmt.Errorf("audio: WAV data chunk before fmt chunk")
			}
			return decodeSamples(b[body:end], format, channels, bits, rate)
		}
		next := end + size&1 // chunks are padded to an even size
		if next <= int64(off) {
			break
		}
		off = int(next)
	}
	return tts.PCM{}, fmt.Errorf("audio: WAV file has no data chunk")
}

func decodeSamples(d []byte, format, channels, bits uint16, rate uint32) (tts.PCM, error) {
	if channels == 0 || rate == 0 || rate > 1_000_000 {
		return tts.PCM{}, fmt.Errorf("audio: WAV has %d channels at %d Hz", channels, rate)
	}
	var sample func([]byte) float32
	switch {
	case format == 1 && bits == 8:
		sample = func(s []byte) float32 { return (float32(s[0]) - 128) / 128 }
	case format == 1 && bits == 16:
		sample = func(s []byte) float32 { return float32(int16(binary.LittleEndian.Uint16(s))) / 32768 }
	case format == 1 && bits == 24:
		sample = func(s []byte) float32 {
			return float32(int32(uint32(s[0])<<8|uint32(s[1])<<16|uint32(s[2])<<24)>>8) / (1 << 23)
		}
	case format == 1 && bits == 32:
		sample = func(s []byte) float32 { return float32(int32(binary.LittleEndian.Uint32(s))) / (1 << 31) }
	case format == 3 && bits == 32:
		sample = func(s []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(s)) }
	default:
		return tts.PCM{}, fmt.Errorf("audio: unsupported WAV encoding (format %d, %d bits)", format, bits)
	}
	width := int(bits / 8)
	frame := width * int(channels)
	n := len(d) / frame
	out := make([]float32, n)
	for i := range out {
		var sum float32
		for c := 0; c < int(channels); c++ {
			sum += sample(d[i*frame+c*width:])
		}
		out[i] = sum / float32(channels)
	}
	return tts.PCM{SampleRate: int(rate), Samples: out}, nil
}

// toS16 converts a float sample to int16, clipping to [-1, 1] and mapping
// NaN to silence.
func toS16(x float32) int16 {
	switch {
	case x != x:
		return 0
	case x >= 1:
		return math.MaxInt16
	case x <= -1:
		return -math.MaxInt16
	}
	return int16(math.Round(float64(x) * math.MaxInt16))
}

// s16Reader streams float samples as little-endian int16 bytes, so that a
// long recording is never held twice in memory.
type s16Reader struct {
	samples []float32
	buf     [16 << 10]byte
	pending []byte
}

func newS16Reader(s []float32) *s16Reader { return &s16Reader{samples: s} }

func (r *s16Reader) Read(p []byte) (int, error) {
	if len(r.pending) == 0 {
		if len(r.samples) == 0 {
			return 0, io.EOF
		}
		n := min(len(r.samples), len(r.buf)/2)
		for i, x := range r.samples[:n] {
			binary.LittleEndian.PutUint16(r.buf[2*i:], uint16(toS16(x)))
		}
		r.samples = r.samples[n:]
		r.pending = r.buf[:2*n]
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}
