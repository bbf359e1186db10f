package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// flacHeader builds fLaC, a STREAMINFO for 24 kHz mono 16-bit with an
// unknown length, a comment block and a padding block of pad bytes, the
// way ffmpeg writes it to a pipe.
func flacHeader(pad int) []byte {
	b := []byte("fLaC\x00\x00\x00\x22")
	si := make([]byte, 34)
	binary.BigEndian.PutUint16(si[0:], 4608)
	binary.BigEndian.PutUint16(si[2:], 4608)
	binary.BigEndian.PutUint64(si[10:], uint64(24000)<<44|uint64(0)<<41|uint64(15)<<36)
	b = append(b, si...)
	b = append(b, 0x04, 0, 0, 8)
	b = append(b, "\x04\x00\x00\x00Lavf"...)
	b = append(b, 0x81, byte(pad>>16), byte(pad>>8), byte(pad))
	return append(b, make([]byte, pad)...)
}

func runFixup(p tts.PCM, stream []byte, chunk int) ([]byte, error) {
	var out bytes.Buffer
	fx := newFLACFixup(&out, p)
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		if _, err := fx.Write(stream[:n]); err != nil {
			return out.Bytes(), err
		}
		stream = stream[n:]
	}
	return out.Bytes(), fx.Finish()
}

// The metadata may arrive in any pieces; the result is the same.
func TestFLACFixupChunking(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		msg := "ffmpeg not found: install the Debian package ffmpeg"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	p := tts.PCM{SampleRate: 24000, Samples: make([]float32, 30000)}
	for i := range p.Samples {
		p.Samples[i] = float32(i%200) / 400
	}
	e, err := NewEncoder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// ffmpeg's own pipe output, before any fixing.
	var raw bytes.Buffer
	if err := e.runFFmpeg(context.Background(), p, e.codecs[tts.FormatFLAC].ffmpegArgs, &raw); err != nil {
		t.Fatal(err)
	}
	if total := binary.BigEndian.Uint64(raw.Bytes()[18:26]) & (1<<36 - 1); total != 0 {
		t.Logf("this ffmpeg wrote a total of %d samples to a pipe; the fixup overwrites it", total)
	}
	whole, err := runFixup(p, raw.Bytes(), raw.Len())
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(whole[18:26]) & (1<<36 - 1); got != 30000 {
		t.Fatalf("total samples %d", got)
	}
	for _, chunk := range []int{1, 3, 41, 42, 43, 4096} {
		got, err := runFixup(p, raw.Bytes(), chunk)
		if err != nil || !bytes.Equal(got, whole) {
			t.Errorf("chunks of %d: err %v, %d bytes, equal %v", chunk, err, len(got), bytes.Equal(got, whole))
		}
	}
}

// FuzzFLACFixup: any stream in any pieces gives an error or a stream that
// starts with a completed STREAMINFO and a last-block flag somewhere; it
// never panics and never holds more than its bound.
func FuzzFLACFixup(f *testing.F) {
	f.Add(append(flacHeader(8192), 0xff, 0xf8, 1, 2, 3), 1)
	f.Add(append(flacHeader(0), 0xff, 0xf8), 7)
	f.Add(flacHeader(10), 1000)
	f.Add([]byte("fLaC\x80\x00\x00\x22"), 2)
	f.Add([]byte("fLaC\xff\xff\xff\xff"), 5)
	f.Add([]byte("OggS"), 1)
	p := tts.PCM{SampleRate: 24000, Samples: []float32{0, 0.5, -0.5}}
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		out, err := runFixup(p, stream, chunk)
		if err != nil {
			return
		}
		if len(out) < 42 || string(out[:4]) != "fLaC" || out[4]&0x7f != 0 {
			t.Fatalf("accepted output starts % x", out[:min(len(out), 8)])
		}
		if total := binary.BigEndian.Uint64(out[18:26]) & (1<<36 - 1); total != 3 {
			t.Fatalf("total samples %d", total)
		}
	})
}
