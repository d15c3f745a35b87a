package mta

import (
	"testing"
	"time"
)

func TestStepStress(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		in       StressInput
		sec      int
		wantKind TransitionKind // 0: no transition
		wantAt   int            // seconds, for a transition
		wantWake int            // seconds; -1: no wake
	}
	rules := StressRules{Limit: 2, Cooldown: 5 * time.Second}
	cases := []struct {
		name  string
		rules StressRules
		steps []step
	}{
		{"enters when the last free slot is taken", rules, []step{
			{SlotTaken, 0, 0, 0, -1},
			{SlotTaken, 1, Entered, 1, -1},
		}},
		{"stays in stress while at the limit", rules, []step{
			{SlotTaken, 0, 0, 0, -1}, {SlotTaken, 1, Entered, 1, -1},
			{Tick, 100, 0, 0, -1},
		}},
		{"exits when the cool-down runs out, at its end", rules, []step{
			{SlotTaken, 0, 0, 0, -1}, {SlotTaken, 1, Entered, 1, -1},
			{SlotFreed, 10, 0, 0, 15},
			{Tick, 14, 0, 0, 15},
			{Tick, 17, Exited, 15, -1},
		}},
		{"reaching the limit in the cool-down restarts it in the same episode", rules, []step{
			{SlotTaken, 0, 0, 0, -1}, {SlotTaken, 1, Entered, 1, -1},
			{SlotFreed, 10, 0, 0, 15},
			{SlotTaken, 12, 0, 0, -1},
			{SlotFreed, 13, 0, 0, 18},
			{Tick, 18, Exited, 18, -1},
		}},
		{"re-enters after an exit as a new episode", rules, []step{
			{SlotTaken, 0, 0, 0, -1}, {SlotTaken, 1, Entered, 1, -1},
			{SlotFreed, 2, 0, 0, 7}, {Tick, 7, Exited, 7, -1},
			{SlotTaken, 9, Entered, 9, -1},
		}},
		{"zero cool-down exits at the first free slot", StressRules{Limit: 1}, []step{
			{SlotTaken, 0, Entered, 0, -1},
			{SlotFreed, 3, Exited, 3, -1},
		}},
		{"freeing more slots during the cool-down does not restart it", rules, []step{
			{SlotTaken, 0, 0, 0, -1}, {SlotTaken, 1, Entered, 1, -1},
			{SlotFreed, 2, 0, 0, 7}, {SlotFreed, 4, 0, 0, 7},
			{Tick, 7, Exited, 7, -1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s StressState
			var entered time.Time
			for i, st := range c.steps {
				var tr *StressTransition
				var wake time.Time
				s, tr, wake = StepStress(c.rules, s, st.in, at(st.sec))
				switch {
				case st.wantKind == 0 && tr != nil:
					t.Fatalf("step %d: unexpected %v at %v", i, tr.Kind, tr.At)
				case st.wantKind != 0 && tr == nil:
					t.Fatalf("step %d: no transition, want %v", i, st.wantKind)
				case tr != nil:
					if tr.Kind != st.wantKind || !tr.At.Equal(at(st.wantAt)) {
						t.Fatalf("step %d: got %v at %v, want %v at %v", i, tr.Kind, tr.At, st.wantKind, at(st.wantAt))
					}
					if tr.Kind == Entered {
						entered = tr.At
					} else if !tr.Entered.Equal(entered) {
						t.Fatalf("step %d: exit names episode %v, want %v", i, tr.Entered, entered)
					}
				}
				if st.wantWake < 0 && !wake.IsZero() {
					t.Fatalf("step %d: wake at %v, want none", i, wake)
				}
				if st.wantWake >= 0 && !wake.Equal(at(st.wantWake)) {
					t.Fatalf("step %d: wake at %v, want %v", i, wake, at(st.wantWake))
				}
			}
		})
	}
}
