package mta

import "time"

// The stress state machine. It is a pure function so that the MTA, the simulator's live replay
// and the virtual-time planner all decide stress the same way.

// StressInput is what happened to the node's slots.
type StressInput int

const (
	// SlotTaken: a connection was granted a slot.
	SlotTaken StressInput = iota
	// SlotFreed: a connection holding a slot closed.
	SlotFreed
	// Tick: time passed; the machine checks whether a cool-down ran out.
	Tick
)

// StressRules are the settings the machine needs.
type StressRules struct {
	Limit int
	// Cooldown is how long active must stay below the limit before stress ends. Zero ends it at
	// the first free slot.
	Cooldown time.Duration
}

// StressState is the machine's whole state.
type StressState struct {
	Active   int
	InStress bool
	// Entered is when the current episode began; zero outside stress.
	Entered time.Time
	// BelowSince is when active last fell below the limit during stress: the cool-down's start.
	// Zero while at the limit or outside stress.
	BelowSince time.Time
}

// TransitionKind tells an entry from an exit.
type TransitionKind int

const (
	Entered TransitionKind = iota + 1
	Exited
)

func (k TransitionKind) String() string {
	switch k {
	case Entered:
		return "entered"
	case Exited:
		return "exited"
	}
	return "none"
}

// StressTransition is a change of stress state.
type StressTransition struct {
	Kind TransitionKind
	// At is when it happened: the entry time, or the end of the cool-down for an exit.
	At time.Time
	// Entered is the episode's entry time, which names the episode.
	Entered time.Time
}

// StepStress applies one input at now and returns the new state, the transition if any, and
// when the machine must next be asked with Tick (zero: not until the next slot change).
func StepStress(r StressRules, s StressState, in StressInput, now time.Time) (StressState, *StressTransition, time.Time) {
	var tr *StressTransition
	switch in {
	case SlotTaken:
		s.Active++
		if s.Active >= r.Limit {
			if !s.InStress {
				// Enter when the last free slot is taken, as Postfix's master does.
				s.InStress, s.Entered = true, now
				tr = &StressTransition{Kind: Entered, At: now, Entered: now}
			}
			// Reaching the limit again during the cool-down restarts it, same episode.
			s.BelowSince = time.Time{}
		}
	case SlotFreed:
		if s.Active > 0 {
			s.Active--
		}
		if s.InStress && s.Active < r.Limit && s.BelowSince.IsZero() {
			s.BelowSince = now
		}
	}
	if s.InStress && !s.BelowSince.IsZero() {
		end := s.BelowSince.Add(r.Cooldown)
		if !now.Before(end) {
			tr = &StressTransition{Kind: Exited, At: end, Entered: s.Entered}
			s.InStress, s.Entered, s.BelowSince = false, time.Time{}, time.Time{}
			return s, tr, time.Time{}
		}
		return s, tr, end
	}
	return s, tr, time.Time{}
}
