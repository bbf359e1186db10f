package audio_test

import (
	"math"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// maxErrorVsIdeal compares got with the ideal tone at its rate, ignoring the
// filter's edge effects.
func maxErrorVsIdeal(got tts.PCM, freq, amp float64, edge int) float64 {
	var worst float64
	for i := edge; i < len(got.Samples)-edge; i++ {
		ideal := amp * math.Sin(2*math.Pi*freq*float64(i)/float64(got.SampleRate))
		worst = math.Max(worst, math.Abs(float64(got.Samples[i])-ideal))
	}
	return worst
}

func rms(s []float32) float64 {
	var sum float64
	for _, x := range s {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(s)))
}

func TestResampleTones(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		freq     float64
	}{
		{22050, 24000, 1000}, // espeak-ng to Kokoro
		{22050, 24000, 9000},
		{48000, 24000, 1000},
		{16000, 24000, 3000},
		{24000, 44100, 5000},
		{44101, 24000, 440}, // coprime rates: taps computed on the fly
	} {
		in := sine(tc.from, 0.5, tc.freq, 0.8)
		out, err := audio.Resample(in, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		want := int(math.Round(float64(len(in.Samples)) * float64(tc.to) / float64(tc.from)))
		if out.SampleRate != tc.to || len(out.Samples) != want {
			t.Errorf("%d->%d: %d samples at %d Hz, want %d", tc.from, tc.to, len(out.Samples), out.SampleRate, want)
		}
		if e := maxErrorVsIdeal(out, tc.freq, 0.8, 200); e > 2e-3 {
			t.Errorf("%d->%d, %.0f Hz: max error %.5f vs the ideal tone", tc.from, tc.to, tc.freq, e)
		}
	}
}

// Content above the new Nyquist frequency is removed, not folded back.
func TestResampleAntiAlias(t *testing.T) {
	out, err := audio.Resample(sine(48000, 0.5, 15000, 0.8), 24000)
	if err != nil {
		t.Fatal(err)
	}
	if r := rms(out.Samples[200 : len(out.Samples)-200]); r > 0.8/math.Sqrt2*1e-3 {
		t.Errorf("15 kHz tone at 24 kHz has RMS %.6f, want under -60 dB", r)
	}
}

func TestResampleEdgeCases(t *testing.T) {
	same := sine(24000, 0.01, 440, 0.5)
	out, err := audio.Resample(same, 24000)
	if err != nil || &out.Samples[0] != &same.Samples[0] {
		t.Errorf("same rate: err %v, copied %v", err, &out.Samples[0] != &same.Samples[0])
	}
	if _, err := audio.Resample(same, 0); err == nil {
		t.Error("rate 0 accepted")
	}
	if _, err := audio.Resample(tts.PCM{Samples: []float32{1}}, 24000); err == nil {
		t.Error("source rate 0 accepted")
	}
	one, err := audio.Resample(tts.PCM{SampleRate: 22050, Samples: []float32{1}}, 24000)
	if err != nil || len(one.Samples) != 1 {
		t.Errorf("one sample: %v, %v", one, err)
	}
	dc := tts.PCM{SampleRate: 22050, Samples: make([]float32, 2205)}
	for i := range dc.Samples {
		dc.Samples[i] = 0.5
	}
	out, err = audio.Resample(dc, 24000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < len(out.Samples)-100; i++ {
		if math.Abs(float64(out.Samples[i])-0.5) > 1e-5 {
			t.Fatalf("DC sample %d = %v", i, out.Samples[i])
		}
	}
}

// BenchmarkResample converts 10 s from espeak-ng's 22050 Hz to 24 kHz.
func BenchmarkResample(b *testing.B) {
	in := sine(22050, 10, 440, 0.5)
	for i := 0; i < b.N; i++ {
		if _, err := audio.Resample(in, 24000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(10*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
}
