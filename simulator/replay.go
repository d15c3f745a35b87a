package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

// ReplayOptions tune a replay.
type ReplayOptions struct {
	Logger *slog.Logger
	// Progress, if set, is called as sessions finish, with the number done and planned.
	Progress func(done, total int)
}

// ErrNotSupported means the scenario asks for something the target cannot do (exit code 2).
var ErrNotSupported = errors.New("not supported against this target")

// Bounds of the waits around the traffic.
const (
	// quietSlack is added to the cool-down in the bound on waiting for nodes to leave stress.
	quietSlack = 60 * time.Second
	// alertWait bounds the search for expected alerts in MailHog once the run is quiet.
	alertWait = 20 * time.Second
	// alertSettle is how long the inbox must stay unchanged, once every expected alert is
	// there, before the search ends: long enough to catch a wrong second email.
	alertSettle = 2 * time.Second
)

// replay is one run of a scenario against a stack.
type replay struct {
	sc    *scenarios.Scenario
	tg    Target
	opts  ReplayOptions
	log   *slog.Logger
	plans []sessionPlan
	// series holds each node's load over time, for the charts.
	series *series
	skips  []SkipReport
	phases []PhaseReport

	mu      sync.Mutex
	results []sessionResult // by plan index
	done    int
	wg      sync.WaitGroup
}

// Replay runs the scenario against the embedded stack and returns its report. An error means
// the run could not be carried out; failed expectations are in the report.
func Replay(ctx context.Context, sc *scenarios.Scenario, tg Target, opts ReplayOptions) (*Report, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if !tg.Shared() {
		for _, ph := range sc.Phases {
			if ph.Skip {
				return nil, fmt.Errorf("%w: phase %q skips time, which needs the embedded stack's shared clock",
					ErrNotSupported, ph.Name)
			}
		}
	}
	r := &replay{sc: sc, tg: tg, opts: opts, log: opts.Logger}
	phases, err := r.plan()
	if err != nil {
		return nil, err
	}
	r.results = make([]sessionResult, len(r.plans))
	started := time.Now()
	r.series = &series{start: started}
	recCtx, stopRec := context.WithCancel(ctx)
	var recWG sync.WaitGroup
	recWG.Add(1)
	go r.series.record(recCtx, tg, len(sc.Topology.Nodes), &recWG)
	defer func() { stopRec(); recWG.Wait() }()

	for i, ph := range sc.Phases {
		if ph.Skip {
			if err := r.quiesce(ctx, "skip "+ph.Name); err != nil {
				return nil, err
			}
			r.skips = append(r.skips, SkipReport{Name: ph.Name, At: time.Since(started).Seconds(), Duration: ph.Duration.String()})
			tg.Clock().Advance(ph.Duration)
			r.log.Info("skipped", "phase", ph.Name, "duration", ph.Duration)
			continue
		}
		r.phases = append(r.phases, PhaseReport{Name: ph.Name, At: time.Since(started).Seconds()})
		if err := r.runPhase(ctx, i, phases[i]); err != nil {
			return nil, err
		}
	}
	if err := r.quiesce(ctx, "end"); err != nil {
		return nil, err
	}
	found, err := r.findAlerts(ctx)
	if err != nil {
		return nil, err
	}
	stopRec()
	recWG.Wait()
	rep := r.report(found)
	rep.DurationMS = time.Since(started).Milliseconds()
	return rep, nil
}

// plan draws every session of the scenario up front.
func (r *replay) plan() ([][]sessionPlan, error) {
	phases := make([][]sessionPlan, len(r.sc.Phases))
	var start time.Duration
	for i, ph := range r.sc.Phases {
		if !ph.Skip {
			ps, err := planPhase(r.sc, i, start, len(r.plans))
			if err != nil {
				return nil, err
			}
			phases[i] = ps
			r.plans = append(r.plans, ps...)
		}
		start += ph.Duration
	}
	return phases, nil
}

// runPhase starts each session of the phase at its intended time and returns at the phase's
// end; sessions still running go on into the next phase, as real clients would.
func (r *replay) runPhase(ctx context.Context, i int, plans []sessionPlan) error {
	ph := r.sc.Phases[i]
	base := time.Now()
	r.log.Info("phase", "name", ph.Name, "sessions", len(plans), "duration", ph.Duration)
	tm := r.timing()
	addrs := r.tg.Addrs()
	for _, p := range plans {
		intended := base.Add(p.Start)
		if err := sleepUntil(ctx, intended); err != nil {
			return err
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			res := runSession(ctx, addrs[p.Node], p, intended, tm)
			r.mu.Lock()
			r.results[p.Index] = res
			r.done++
			done := r.done
			r.mu.Unlock()
			if r.opts.Progress != nil {
				r.opts.Progress(done, len(r.plans))
			}
		}()
	}
	return sleepUntil(ctx, base.Add(ph.Duration))
}

// timing derives the client's bounds from the MTA settings, so a client never gives up before
// the server has had its say.
func (r *replay) timing() clientTiming {
	cfg := r.tg.Settings()
	return clientTiming{
		GreetingTimeout: cfg.SlotWait + 10*time.Second,
		ReplyTimeout:    cfg.CommandTimeout + 10*time.Second,
		MaxSession:      10 * time.Minute,
		BindClients:     r.tg.Shared(),
	}
}

// quiesce waits until every session has ended, every spool has drained and every node has left
// stress, within a bound; a skip or the end of a replay starts only then, so that no episode
// spans a skip.
func (r *replay) quiesce(ctx context.Context, why string) error {
	r.wg.Wait()
	cfg := r.tg.Settings()
	deadline := time.Now().Add(cfg.Cooldown + quietSlack)
	for {
		busy := r.busyNodes()
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.log.Warn("nodes not quiet", "at", why, "nodes", busy)
			return nil
		}
		if err := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return err
		}
	}
}

func (r *replay) busyNodes() []string {
	var busy []string
	for i, n := range r.sc.Topology.Nodes {
		s, ok := r.tg.State(i)
		if ok && (s.Active > 0 || s.Waiting > 0 || s.QueueDepth > 0 || s.InStress) {
			busy = append(busy, fmt.Sprintf("%s(active %d, queue %d, stress %v)", n.Name, s.Active, s.QueueDepth, s.InStress))
		}
	}
	return busy
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
