package audio

import (
	"io"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// WritePCM writes p's samples as raw signed 16-bit little-endian PCM with no
// header, clipped and rounded as WriteWAV does (the bytes equal a WAV
// file's data chunk), and returns the bytes written: 2 per sample. The
// reader must know the rate and channel count (24 kHz mono for the
// service's "pcm" format).
func WritePCM(w io.Writer, p tts.PCM) (int64, error) {
	if p.SampleRate <= 0 {
		return 0, tts.Errorf(tts.EINVALID, "audio: invalid sample rate %d", p.SampleRate)
	}
	return io.Copy(w, newS16Reader(p.Samples))
}
