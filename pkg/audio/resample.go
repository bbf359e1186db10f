package audio

import (
	"fmt"
	"math"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Resampler parameters: 32 zero crossings of the sinc on each side under a
// Kaiser window (beta 8.6, about 80 dB stopband), passband to 95% of the
// lower Nyquist frequency. Plenty for speech, and cheap: 64 taps per output
// sample when upsampling.
const (
	resampleZeros   = 32
	resampleBeta    = 8.6
	resampleRolloff = 0.95
	// maxPhaseTable bounds the precomputed filter (phases x taps floats);
	// ratios with more phases than fit compute their taps on the fly.
	maxPhaseTable = 1 << 20
)

// Resample returns p converted to rate by band-limited (windowed-sinc)
// interpolation. The result has round(len*rate/p.SampleRate) samples, so
// the duration is kept. When the rates are equal p is returned unchanged
// (sharing its samples).
func Resample(p tts.PCM, rate int) (tts.PCM, error) {
	if p.SampleRate <= 0 || rate <= 0 {
		return tts.PCM{}, fmt.Errorf("audio: cannot resample from %d Hz to %d Hz", p.SampleRate, rate)
	}
	if p.SampleRate == rate || len(p.Samples) == 0 {
		return tts.PCM{SampleRate: rate, Samples: p.Samples}, nil
	}
	g := gcd(p.SampleRate, rate)
	up, down := rate/g, p.SampleRate/g // output sample n sits at input position n*down/up
	// Cutoff as a fraction of the input Nyquist frequency: below the output
	// Nyquist when downsampling so nothing aliases.
	cutoff := resampleRolloff * math.Min(1, float64(rate)/float64(p.SampleRate))
	half := int(math.Ceil(resampleZeros / cutoff)) // taps each side, in input samples
	taps := 2 * half

	x := p.Samples
	nOut := int((int64(len(x))*int64(rate) + int64(p.SampleRate)/2) / int64(p.SampleRate))
	out := make([]float32, nOut)

	var table []float32
	if up*taps <= maxPhaseTable {
		table = make([]float32, up*taps)
		for ph := 0; ph < up; ph++ {
			filterTaps(table[ph*taps:(ph+1)*taps], float64(ph)/float64(up), half, cutoff)
		}
	}
	scratch := make([]float32, taps)
	for n := range out {
		pos := int64(n) * int64(down)
		i0 := int(pos / int64(up)) // input sample at or before the output instant
		ph := int(pos % int64(up))
		var h []float32
		if table != nil {
			h = table[ph*taps : (ph+1)*taps]
		} else {
			filterTaps(scratch, float64(ph)/float64(up), half, cutoff)
			h = scratch
		}
		// Taps cover input samples i0-half+1 .. i0+half.
		first := i0 - half + 1
		lo, hi := 0, taps
		if first < 0 {
			lo = -first
		}
		if first+hi > len(x) {
			hi = len(x) - first
		}
		var acc float32
		for k := lo; k < hi; k++ {
			acc += x[first+k] * h[k]
		}
		out[n] = acc
	}
	return tts.PCM{SampleRate: rate, Samples: out}, nil
}

// filterTaps fills h with the windowed-sinc weights of the input samples
// around an output instant frac (0 <= frac < 1) past input sample half-1,
// normalised to unit DC gain.
func filterTaps(h []float32, frac float64, half int, cutoff float64) {
	var sum float64
	w := make([]float64, len(h))
	for k := range h {
		d := float64(k-half+1) - frac // distance of the input sample from the instant
		v := cutoff * sinc(cutoff*d) * kaiser(d/float64(half), resampleBeta)
		w[k] = v
		sum += v
	}
	for k := range h {
		h[k] = float32(w[k] / sum)
	}
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// kaiser is the Kaiser window on [-1, 1].
func kaiser(x, beta float64) float64 {
	if x <= -1 || x >= 1 {
		return 0
	}
	return besselI0(beta*math.Sqrt(1-x*x)) / besselI0(beta)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by
// its power series (converges fast for the small arguments used here).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
