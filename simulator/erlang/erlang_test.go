package erlang

import (
	"math"
	"testing"
)

func near(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

func TestErlangBPublishedValues(t *testing.T) {
	for _, tc := range []struct {
		c    int
		a    float64
		want float64
		rel  float64
	}{
		{0, 3, 1, 0},
		{1, 1, 0.5, 1e-12},
		{2, 1, 0.2, 1e-12},
		{10, 5, 0.018385, 1e-4},
		{30, 25, 0.0526, 5e-3},
		// Teletraffic tables: 4.461 erlangs on 10 trunks and 84.064 on 100 block 1 %.
		{10, 4.461, 0.01, 2e-3},
		{100, 84.064, 0.01, 2e-3},
	} {
		if got := B(tc.c, tc.a); !near(got, tc.want, tc.rel) {
			t.Errorf("B(%d, %g) = %.6g, want %.6g", tc.c, tc.a, got, tc.want)
		}
	}
}

func TestErlangCPublishedValues(t *testing.T) {
	for _, tc := range []struct {
		c    int
		a    float64
		want float64
	}{
		{1, 0.5, 0.5}, // M/M/1: the chance of waiting is the utilisation
		{2, 1, 1.0 / 3},
		{3, 2, 4.0 / 9},
		{3, 3, 1}, // at or over capacity everyone waits
		{3, 7, 1},
	} {
		if got := C(tc.c, tc.a); !near(got, tc.want, 1e-12) {
			t.Errorf("C(%d, %g) = %.12g, want %.12g", tc.c, tc.a, got, tc.want)
		}
	}
}

func TestErlangMaxLoadBInvertsB(t *testing.T) {
	for _, tc := range []struct {
		c      int
		target float64
		want   float64
	}{
		{10, 0.01, 4.461},
		{30, 0.01, 20.337},
		{100, 0.01, 84.064},
	} {
		a := MaxLoadB(tc.c, tc.target)
		if !near(a, tc.want, 1e-3) {
			t.Errorf("MaxLoadB(%d, %g) = %.4f, want %.3f", tc.c, tc.target, a, tc.want)
		}
		if b := B(tc.c, a); b > tc.target {
			t.Errorf("B(%d, MaxLoadB) = %g, above the target %g", tc.c, b, tc.target)
		}
		if b := B(tc.c, a*(1+1e-9)); b <= tc.target {
			t.Errorf("B(%d, a slightly above MaxLoadB) = %g, still within the target: not the largest",
				tc.c, b)
		}
	}
	if got := MaxLoadB(10, 1); !math.IsInf(got, 1) {
		t.Errorf("MaxLoadB(10, 1) = %g, want +Inf", got)
	}
	if got := MaxLoadB(10, 0); got != 0 {
		t.Errorf("MaxLoadB(10, 0) = %g, want 0", got)
	}
}

func TestErlangBIsStableForLargeSystems(t *testing.T) {
	// A factorial-based formula overflows long before 10000 slots.
	b := B(10000, 9500)
	if math.IsNaN(b) || b <= 0 || b >= 0.01 {
		t.Fatalf("B(10000, 9500) = %g, want a small positive number", b)
	}
}

func TestErlangRejectsNonsense(t *testing.T) {
	if !math.IsNaN(B(-1, 1)) || !math.IsNaN(B(1, -1)) || !math.IsNaN(C(0, 1)) {
		t.Error("negative or empty inputs should give NaN")
	}
}

// Blocking rises with load and falls with slots; so does the chance of waiting.
func TestErlangMonotonic(t *testing.T) {
	for c := 1; c <= 200; c += 7 {
		prevB, prevC := 0.0, 0.0
		for a := 0.05; a < 2.5*float64(c); a *= 1.1 {
			b, w := B(c, a), C(c, a)
			if b < prevB || w < prevC {
				t.Fatalf("c=%d a=%g: B=%g C=%g fell from %g %g as load rose", c, a, b, w, prevB, prevC)
			}
			if b > w+1e-15 {
				t.Fatalf("c=%d a=%g: B=%g above C=%g; waiting is never rarer than loss", c, a, b, w)
			}
			if next := B(c+1, a); next > b {
				t.Fatalf("a=%g: B(%d)=%g below B(%d)=%g; a slot more must not block more", a, c, b, c+1, next)
			}
			prevB, prevC = b, w
		}
	}
}

func TestErlangAllBusyRate(t *testing.T) {
	// One slot, load 1, mean hold 1 s: busy half the time, one busy period every 2 s.
	if got := AllBusyRate(1, 1, 1); !near(got, 0.5, 1e-12) {
		t.Errorf("AllBusyRate(1, 1, 1) = %g, want 0.5", got)
	}
}
