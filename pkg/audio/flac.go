package audio

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// FLAC metadata, as ffmpeg writes it to a pipe: "fLaC", a STREAMINFO block
// (always first) whose total-samples and MD5 fields are zero because ffmpeg
// fills them in by seeking back at the end, a VORBIS_COMMENT block and an
// 8 KiB PADDING block. A zero total means "unknown": ffprobe then reports no
// duration and players cannot show one or seek by time.
const (
	flacMagic          = "fLaC"
	flacStreamInfo     = 0
	flacPadding        = 1
	flacStreamInfoSize = 34
	// maxFLACMetadata bounds what is held back before the first frame;
	// ffmpeg's metadata is about 8.3 KB.
	maxFLACMetadata = 1 << 20
)

// flacFixup holds back the metadata of a FLAC stream until it is complete,
// sets STREAMINFO's total samples and MD5 (known before encoding: they
// describe the s16le input), drops PADDING blocks, and then passes the
// frames through untouched.
type flacFixup struct {
	w         io.Writer
	rate      int
	samples   uint64
	md5       [md5.Size]byte
	head      []byte // metadata seen so far, while !passing
	passing   bool
	malformed error
}

func newFLACFixup(w io.Writer, p tts.PCM) fixupWriter {
	h := md5.New()
	// Hashing cannot fail; the bytes are the ones ffmpeg is given.
	_, _ = io.Copy(h, newS16Reader(p.Samples))
	f := &flacFixup{w: w, rate: p.SampleRate, samples: uint64(len(p.Samples))}
	h.Sum(f.md5[:0])
	return f
}

func (f *flacFixup) Write(p []byte) (int, error) {
	if f.malformed != nil {
		return 0, f.malformed
	}
	if f.passing {
		return f.w.Write(p)
	}
	f.head = append(f.head, p...)
	end, err := flacMetadataEnd(f.head)
	if err == nil && end < 0 && len(f.head) > maxFLACMetadata {
		err = fmt.Errorf("more than %d bytes of metadata", maxFLACMetadata)
	}
	if err != nil {
		f.malformed = fmt.Errorf("ffmpeg wrote an unexpected FLAC header: %w", err)
		return 0, f.malformed
	}
	if end < 0 {
		return len(p), nil // need more
	}
	meta, err := f.rewrite(f.head[:end])
	if err != nil {
		f.malformed = fmt.Errorf("ffmpeg wrote an unexpected FLAC header: %w", err)
		return 0, f.malformed
	}
	f.passing = true
	rest := f.head[end:]
	f.head = nil
	if _, err := f.w.Write(append(meta, rest...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Malformed implements fixupWriter.
func (f *flacFixup) Malformed() error { return f.malformed }

// Finish implements fixupWriter.
func (f *flacFixup) Finish() error {
	if !f.passing {
		return errors.New("ffmpeg's FLAC output ended inside its header")
	}
	return nil
}

// flacMetadataEnd returns the offset of the first frame once b holds all
// the metadata blocks, or -1 when more bytes are needed.
func flacMetadataEnd(b []byte) (int, error) {
	if len(b) < len(flacMagic) {
		if string(b) != flacMagic[:len(b)] {
			return 0, errors.New("no fLaC marker")
		}
		return -1, nil
	}
	if string(b[:4]) != flacMagic {
		return 0, errors.New("no fLaC marker")
	}
	for off := 4; ; {
		if len(b) < off+4 {
			return -1, nil
		}
		last := b[off]&0x80 != 0
		off += 4 + int(uint32(b[off+1])<<16|uint32(b[off+2])<<8|uint32(b[off+3]))
		if len(b) < off {
			return -1, nil
		}
		if last {
			return off, nil
		}
	}
}

// rewrite returns the metadata (from "fLaC" to the first frame) with
// STREAMINFO completed and the padding dropped. It checks that STREAMINFO
// describes what was encoded, so a wrong count or MD5 is never stamped on
// another stream.
func (f *flacFixup) rewrite(meta []byte) ([]byte, error) {
	out := make([]byte, 0, len(meta))
	out = append(out, flacMagic...)
	lastHeader := -1
	for off, i := 4, 0; off < len(meta); i++ {
		typ := meta[off] & 0x7f
		size := int(uint32(meta[off+1])<<16 | uint32(meta[off+2])<<8 | uint32(meta[off+3]))
		block := meta[off : off+4+size]
		off += 4 + size
		if i == 0 && (typ != flacStreamInfo || size != flacStreamInfoSize) {
			return nil, fmt.Errorf("first block is type %d of %d bytes, not STREAMINFO", typ, size)
		}
		if i > 0 && typ == flacStreamInfo {
			return nil, errors.New("a second STREAMINFO block")
		}
		if typ == flacPadding {
			continue
		}
		lastHeader = len(out)
		out = append(out, block...)
		out[lastHeader] &^= 0x80
		if typ != flacStreamInfo {
			continue
		}
		si := out[lastHeader+4:]
		// Bytes 10..17: 20 bits of sample rate, 3 of channels-1, 5 of
		// bits-per-sample-1, 36 of total samples.
		v := binary.BigEndian.Uint64(si[10:18])
		rate, channels, bits := int(v>>44), int(v>>41&7)+1, int(v>>36&31)+1
		if rate != f.rate || channels != 1 || bits != 16 {
			return nil, fmt.Errorf("STREAMINFO says %d Hz, %d channels, %d bits; encoded %d Hz mono 16-bit", rate, channels, bits, f.rate)
		}
		if f.samples >= 1<<36 {
			return nil, fmt.Errorf("%d samples do not fit STREAMINFO", f.samples)
		}
		binary.BigEndian.PutUint64(si[10:18], v&^(1<<36-1)|f.samples)
		copy(si[18:34], f.md5[:])
	}
	out[lastHeader] |= 0x80
	return out, nil
}
