package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mtastress/mtastress/simulator/erlang"
)

// planPoissonSource sends Poisson arrivals with exponential holds to one node: the M/M/c/c system
// Erlang B describes.
type planPoissonSource struct {
	rng        *rand.Rand
	lambda, mu float64 // per second
	t          float64
	left       int
}

func newPlanPoissonSource(seed uint64, lambda, mu float64, sessions int) *planPoissonSource {
	rng := rand.New(rand.NewPCG(seed, 1))
	return &planPoissonSource{rng: rng, lambda: lambda, mu: mu, left: sessions}
}

func (s *planPoissonSource) next(a *planArrival) bool {
	if s.left == 0 {
		return false
	}
	s.left--
	s.t += s.rng.ExpFloat64() / s.lambda
	hold := int64(s.rng.ExpFloat64() / s.mu * float64(time.Second))
	*a = planArrival{at: int64(s.t * float64(time.Second)), normal: hold, stress: hold}
	return true
}

// planLossRules make a node an Erlang loss system: no waiting (slot wait 0), no per-client cap,
// and a cool-down of 0 so that every entry into the all-busy state is one stress episode.
func planLossRules(c int) planRules {
	return planRules{limit: c, waitMax: 4 * c, clientCap: math.MaxInt32}
}

func TestPlannerAgreesWithErlangB(t *testing.T) {
	// Sizes come from running each case under eight seeds: at these counts the relative
	// spread of both figures is at most about 0.4 %, so 2 % is five of them. Loaded systems
	// block often and need the fewest sessions for that; many slots need more.
	for _, tc := range []struct {
		c        int
		a        float64
		sessions int
	}{
		{2, 1.5, 500_000},
		{10, 8, 2_000_000},
		{30, 33, 2_000_000},
		{100, 110, 4_000_000},
	} {
		t.Run(fmt.Sprintf("%d slots at %g erlangs", tc.c, tc.a), func(t *testing.T) {
			t.Parallel()
			const mu = 1.0 // holds of 1 s on average: a is the arrival rate per second
			src := newPlanPoissonSource(1, tc.a*mu, mu, tc.sessions)
			e := newPlanEngine([]planRules{planLossRules(tc.c)})
			e.run(src)
			n := &e.nodes[0]

			want := erlang.B(tc.c, tc.a)
			got := float64(n.blocked) / float64(n.sessions)
			if math.Abs(got-want) > 0.02*want {
				t.Errorf("c=%d a=%g: blocked share %.5f, Erlang B %.5f (off by %.2f %%)",
					tc.c, tc.a, got, want, 100*math.Abs(got-want)/want)
			}
			// Entries into the all-busy state: every one is a stress episode at cool-down 0.
			rate := float64(n.episodes) / src.t
			wantRate := erlang.AllBusyRate(tc.c, tc.a, mu)
			if math.Abs(rate-wantRate) > 0.02*wantRate {
				t.Errorf("c=%d a=%g: %.4f entries into stress a second, c·μ·B = %.4f (off by %.2f %%)",
					tc.c, tc.a, rate, wantRate, 100*math.Abs(rate-wantRate)/wantRate)
			}
			t.Logf("c=%d a=%g: blocked %.5f vs B %.5f, entries %.4f/s vs %.4f/s",
				tc.c, tc.a, got, want, rate, wantRate)
		})
	}
}
