package kokoro

import (
	"math"
	"time"
)

// join concatenates chunk audio with pauses[i] of silence after chunk i
// (except the last), fades a few milliseconds in and out at every join so
// that the cut does not click, and clips to [-1, 1] (NaN becomes 0). The
// chunks are modified in place.
func join(chunks [][]float32, pauses []time.Duration, sampleRate int) []float32 {
	fade := int(joinFade.Seconds() * float64(sampleRate))
	total := 0
	silence := make([]int, len(chunks))
	for i, c := range chunks {
		total += len(c)
		if i < len(chunks)-1 && i < len(pauses) && pauses[i] > 0 {
			silence[i] = int(math.Round(pauses[i].Seconds() * float64(sampleRate)))
			total += silence[i]
		}
	}
	out := make([]float32, 0, total)
	for i, c := range chunks {
		f := min(fade, len(c)/2)
		if i > 0 {
			for k := 0; k < f; k++ {
				c[k] *= float32(k) / float32(f)
			}
		}
		if i < len(chunks)-1 {
			for k := 0; k < f; k++ {
				c[len(c)-1-k] *= float32(k) / float32(f)
			}
		}
		for _, v := range c {
			out = append(out, clip(v))
		}
		out = append(out, make([]float32, silence[i])...)
	}
	return out
}

func clip(v float32) float32 {
	switch {
	case v > 1:
		return 1
	case v < -1:
		return -1
	case v != v: // NaN
		return 0
	}
	return v
}
