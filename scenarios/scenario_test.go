package scenarios

import (
	"errors"
	"math"
	"testing"
	"time"
)

// rampScenario: 10 s at 2/s; 10 s rising to 12/s over 4 s; a 1 h skip;
// 10 s rising from 0 to 6/s over 2 s.
func rampScenario() *Scenario {
	return &Scenario{Phases: []Phase{
		{Name: "a", Duration: 10 * time.Second, Rate: 2},
		{Name: "b", Duration: 10 * time.Second, Rate: 12, Ramp: 4 * time.Second},
		{Name: "gap", Duration: time.Hour, Skip: true},
		{Name: "c", Duration: 10 * time.Second, Rate: 6, Ramp: 2 * time.Second},
	}}
}

func TestRateAt(t *testing.T) {
	s := rampScenario()
	gapEnd := 20*time.Second + time.Hour
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{
		{-time.Second, 0},
		{0, 2},
		{9 * time.Second, 2},
		{10 * time.Second, 2},  // the ramp starts from the previous rate
		{12 * time.Second, 7},  // half way up
		{14 * time.Second, 12}, // the ramp is over
		{19 * time.Second, 12},
		{20 * time.Second, 0}, // skip
		{gapEnd - 1, 0},
		{gapEnd, 0}, // after a skip the ramp starts from 0
		{gapEnd + time.Second, 3},
		{gapEnd + 5*time.Second, 6},
		{gapEnd + 10*time.Second, 0}, // past the end
	} {
		if got := s.RateAt(tc.at); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("RateAt(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestRateAtFirstPhaseRampsFromZero(t *testing.T) {
	s := &Scenario{Phases: []Phase{{Duration: 10 * time.Second, Rate: 10, Ramp: 10 * time.Second}}}
	if got := s.RateAt(2500 * time.Millisecond); got != 2.5 {
		t.Errorf("RateAt(2.5s) = %v, want 2.5", got)
	}
}

func TestDurations(t *testing.T) {
	s := rampScenario()
	if got, want := s.TotalDuration(), 30*time.Second+time.Hour; got != want {
		t.Errorf("TotalDuration = %v, want %v", got, want)
	}
	if got := s.LiveDuration(); got != 30*time.Second {
		t.Errorf("LiveDuration = %v, want 30s", got)
	}
	if i, into, ok := s.PhaseAt(25 * time.Second); !ok || i != 2 || into != 5*time.Second {
		t.Errorf("PhaseAt(25s) = %d, %v, %v; want 2, 5s, true", i, into, ok)
	}
}

func TestExpectationString(t *testing.T) {
	for _, tc := range []struct {
		e    Expectation
		want string
	}{
		{Expectation{Kind: KindAlert, Alert: AlertStress, Node: "edge-1", Count: 1}, "alert stress node=edge-1 count=1"},
		{Expectation{Kind: KindAlert, Alert: AlertFrequent, Cluster: "edge", Diagnosis: "capacity", Count: 1},
			"alert frequent cluster=edge diagnosis=capacity count=1"},
		{Expectation{Kind: KindLost, Lost: 0}, "lost max=0"},
		{Expectation{Kind: KindTempfailedMax, TempfailedMax: 0.05}, "tempfailed max=0.05"},
		{Expectation{Kind: KindPeakActive, Node: "a", PeakActive: 10}, "peak_active node=a min=10"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Column: 7, Msg: "bad"}, "a.yaml:3:7: bad"},
		{Error{File: "a.yaml", Line: 3, Msg: "bad"}, "a.yaml:3: bad"},
		{Error{Line: 1, Column: 2, Msg: "bad"}, "1:2: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.e, ErrInvalid) {
			t.Errorf("%q does not wrap ErrInvalid", tc.want)
		}
	}
}
