package simulator

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mtastress/mtastress/scenarios"
)

func planAll(t *testing.T, sc *scenarios.Scenario) []sessionPlan {
	t.Helper()
	r := &replay{sc: sc}
	if _, err := r.plan(); err != nil {
		t.Fatal(err)
	}
	return r.plans
}

func TestPlanIsDeterministicPerSeed(t *testing.T) {
	sc, err := scenarios.Builtin("spam-burst", scenarios.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	a, b := planAll(t, sc), planAll(t, sc)
	if diff := cmp.Diff(a, b, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Fatalf("same seed, different plans (-first +second):\n%s", diff)
	}
	other := *sc
	other.Seed++
	c := planAll(t, &other)
	if len(c) == len(a) && cmp.Equal(a[0].Start, c[0].Start) {
		t.Fatal("a different seed drew the same traffic")
	}
}

func TestPlanFollowsTheRate(t *testing.T) {
	// 40/s for 50 s is 2000 sessions on average; Poisson's standard deviation is about 45.
	sc := &scenarios.Scenario{
		Name: "rate", Seed: 3,
		Topology: scenarios.Topology{Cluster: "c", Nodes: []scenarios.Node{
			{Name: "a", Weight: 3, ProcessLimit: 10}, {Name: "b", Weight: 1, ProcessLimit: 10}}},
		Profiles: map[string]scenarios.Profile{"p": {Name: "p", Messages: scenarios.IntRange{Min: 1, Max: 1},
			Recipients: scenarios.IntRange{Min: 1, Max: 3}, Size: scenarios.FloatRange{Min: 100, Max: 200}, Clients: 10}},
		Phases: []scenarios.Phase{
			{Name: "flat", Duration: 50 * time.Second, Rate: 40, Mix: map[string]float64{"p": 1}},
			{Name: "ramp", Duration: 20 * time.Second, Rate: 0, Ramp: 20 * time.Second, Mix: map[string]float64{"p": 1}},
		},
	}
	plans := planAll(t, sc)
	var flat, ramp, onA int
	for _, p := range plans {
		if p.Phase == 0 {
			flat++
		} else {
			ramp++
			// Starts count from the start of their own phase.
			if p.Start < 0 || p.Start >= 20*time.Second {
				t.Fatalf("ramp session at %v into its phase, outside it", p.Start)
			}
		}
		if p.Node == 0 {
			onA++
		}
		if n := len(p.Messages[0].Rcpts); n < 1 || n > 3 {
			t.Fatalf("%d recipients, want 1..3", n)
		}
	}
	if math.Abs(float64(flat)-2000) > 200 {
		t.Fatalf("flat phase drew %d sessions, want about 2000", flat)
	}
	// A ramp from 40/s down to 0 over 20 s averages 20/s: about 400.
	if math.Abs(float64(ramp)-400) > 100 {
		t.Fatalf("ramp drew %d sessions, want about 400", ramp)
	}
	// Weights 3:1 send three quarters to node a.
	if share := float64(onA) / float64(len(plans)); math.Abs(share-0.75) > 0.04 {
		t.Fatalf("node a got %.3f of sessions, want about 0.75", share)
	}
}

func TestClientAddressesAreDistinctPerProfile(t *testing.T) {
	seen := map[string]bool{}
	for p := range 3 {
		for i := range 1000 {
			a := clientAddr(p, i)
			if !a.IsLoopback() {
				t.Fatalf("%v is not loopback", a)
			}
			if seen[a.String()] {
				t.Fatalf("%v drawn twice", a)
			}
			seen[a.String()] = true
		}
	}
}
