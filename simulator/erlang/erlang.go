// Package erlang holds the Erlang B and C formulas of teletraffic theory, which the planner's
// tests use as ground truth: a node with c slots and no waiting line is an M/M/c/c loss system
// (Erlang B), and one whose clients wait without limit is M/M/c (Erlang C).
//
// Offered load a is in erlangs: arrival rate × mean hold (λ/μ).
package erlang

import "math"

// B is the Erlang B blocking probability: the share of arrivals that find all c slots busy
// when blocked arrivals are lost. It uses the recursion B(k) = a·B(k−1) / (k + a·B(k−1)),
// B(0) = 1, which never forms a factorial or a power of a and so stays exact for large c.
// B returns NaN for c < 0 or a < 0.
func B(c int, a float64) float64 {
	if c < 0 || a < 0 || math.IsNaN(a) {
		return math.NaN()
	}
	if math.IsInf(a, 1) {
		return 1
	}
	b := 1.0
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	return b
}

// C is the Erlang C probability that an arrival has to wait when all c slots are busy and
// waiting is unlimited. It is derived from B as c·B / (c − a·(1 − B)), which inherits B's
// stability. At a ≥ c the queue grows without bound and every arrival waits: C is 1.
// C returns NaN for c < 1 or a < 0.
func C(c int, a float64) float64 {
	if c < 1 || a < 0 || math.IsNaN(a) {
		return math.NaN()
	}
	if a >= float64(c) {
		return 1
	}
	b := B(c, a)
	return float64(c) * b / (float64(c) - a*(1-b))
}

// AllBusyRate is how often, per unit of time, an M/M/c/c system with service rate mu per slot
// goes from c−1 busy slots to c. In equilibrium that equals the rate of leaving c busy slots,
// c·mu·B(c, a): each busy period of the full system is one entry into stress when the
// cool-down is 0.
func AllBusyRate(c int, a, mu float64) float64 {
	return float64(c) * mu * B(c, a)
}

// MaxLoadB is the largest offered load, in erlangs, that c slots carry with blocking at most
// target: the inverse of B in a. B rises strictly with a, so bisection converges; it stops
// at a relative precision of 1e-12. A target of 1 or more admits any load (+Inf); a target
// of 0 or less, or c < 1, admits none (0).
func MaxLoadB(c int, target float64) float64 {
	if c < 1 || target <= 0 || math.IsNaN(target) {
		return 0
	}
	if target >= 1 {
		return math.Inf(1)
	}
	// Grow the bracket until it holds the answer: B(c, hi) > target.
	lo, hi := 0.0, float64(c)
	for B(c, hi) <= target {
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1e-12*hi {
		mid := lo + (hi-lo)/2
		if B(c, mid) <= target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}
