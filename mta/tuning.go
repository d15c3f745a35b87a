package mta

import "time"

// tuning is the part of a node's session limits that a reload may change: the command
// timeouts, the error and junk limits and the minimum data rate, normal and in stress, and the
// waiting line's wait, size and per-client cap, and the hop count limit. It is swapped whole. A session takes its
// settings when it gets its slot and keeps them to its end, as a Postfix smtpd process keeps
// the settings it started with; a waiter keeps the wait it began. The process limit and the
// cool-down are not here: they are the model and the stress machine's rules, fixed at start.
type tuning struct {
	normal, stress settings
	slotWait       time.Duration
	waitMax        int
	clientCap      int
	hopcountLimit  int // read at each message
}

func newTuning(cfg Config) *tuning {
	return &tuning{
		normal:        settings{false, cfg.CommandTimeout, cfg.HardErrorLimit, cfg.JunkLimit, cfg.MinDataRate},
		stress:        settings{true, cfg.StressCommandTimeout, cfg.StressHardErrorLimit, cfg.StressJunkLimit, cfg.MinDataRate},
		slotWait:      cfg.SlotWait,
		waitMax:       cfg.WaitMax,
		clientCap:     cfg.ClientCap,
		hopcountLimit: cfg.HopcountLimit,
	}
}

// maxCommandTimeout is go-smtp's server-wide read and write timeout: only a ceiling, since the
// connection wrapper clamps every deadline go-smtp asks for to the session's own timeout, and
// a reload may raise that.
const maxCommandTimeout = 24 * time.Hour
