package mta

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mtastress/mtastress/events"
)

// stressRun drives StepStress from the pool's slot changes: it reads the clock, publishes
// transitions at once, wakes itself at the end of a cool-down and keeps the current episode
// in a file beside the spool. All of it runs under slotPool.mu.
type stressRun struct {
	p     *slotPool
	rules StressRules
	state StressState
	timer *time.Timer
	file  string

	episode    string // current episode id, "" outside stress
	peak       int    // most active+waiting in the current episode
	samplePeak int    // most active+waiting since the last load sample
	peakDemand int    // most active+waiting since start
	episodes   []Episode
}

// maxEpisodes bounds the history a Snapshot returns; older episodes are dropped.
const maxEpisodes = 1000

// episodeFile is the name, inside the spool directory, of the current episode's record.
const episodeFile = "episode"

func (r *stressRun) init(p *slotPool) {
	r.p = p
	r.rules = StressRules{Limit: p.cfg.Limit, Cooldown: p.cfg.Cooldown}
	r.file = filepath.Join(p.cfg.SpoolDir, episodeFile)
}

// restore continues an episode that was open when the node last stopped. The machine is then in
// stress with no active session, so the cool-down starts now and the episode ends after it
// unless load returns; no second "entered" is published.
func (r *stressRun) restore() error {
	entered, peak, err := readEpisode(r.file)
	if err != nil || entered.IsZero() {
		return err
	}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	now := r.p.cfg.Clock.Now()
	r.state = StressState{InStress: true, Entered: entered, BelowSince: now}
	r.episode = events.EpisodeID(r.p.cfg.Cluster, r.p.cfg.Node, entered)
	r.peak = peak
	r.episodes = append(r.episodes, Episode{ID: r.episode, Entered: entered, PeakDemand: peak})
	r.p.log.Warn("continuing stress episode after restart", "episode", r.episode, "entered", entered)
	r.stepLocked(Tick)
	return nil
}

// stepLocked feeds one input to the machine at the clock's now. Caller holds p.mu.
func (r *stressRun) stepLocked(in StressInput) {
	st, tr, wake := StepStress(r.rules, r.state, in, r.p.cfg.Clock.Now())
	r.state = st
	if tr != nil {
		r.transitionLocked(tr)
	}
	r.noteDemandLocked()
	r.armLocked(wake)
}

// noteDemandLocked records active+waiting in the peaks. Caller holds p.mu.
func (r *stressRun) noteDemandLocked() {
	d := r.state.Active + r.p.waiting.Len()
	r.samplePeak = max(r.samplePeak, d)
	r.peakDemand = max(r.peakDemand, d)
	if r.state.InStress {
		r.peak = max(r.peak, d)
		if n := len(r.episodes); n > 0 && r.episodes[n-1].Exited == nil {
			r.episodes[n-1].PeakDemand = r.peak
		}
	}
}

func (r *stressRun) transitionLocked(tr *StressTransition) {
	cfg := r.p.cfg
	id := events.EpisodeID(cfg.Cluster, cfg.Node, tr.Entered)
	switch tr.Kind {
	case Entered:
		r.episode = id
		r.peak = r.state.Active + r.p.waiting.Len()
		r.episodes = append(r.episodes, Episode{ID: id, Entered: tr.Entered, PeakDemand: r.peak})
		if len(r.episodes) > maxEpisodes {
			r.episodes = r.episodes[1:]
		}
		// The record is written before anyone hears of the episode, so that a restart right
		// after the event continues it instead of starting another.
		if err := writeEpisode(r.file, tr.Entered, r.peak); err != nil {
			r.p.log.Error("stress episode not saved; a restart would start a new one", "file", r.file, "err", err)
		}
		r.p.log.Warn("entered stress: all slots taken", "episode", id, "limit", cfg.Limit)
		if cfg.Events != nil {
			cfg.Events.Entered(events.StressTransition{Episode: id, Entered: tr.Entered, PeakDemand: r.peak})
		}
	case Exited:
		exited := tr.At
		if n := len(r.episodes); n > 0 && r.episodes[n-1].ID == id {
			r.episodes[n-1].Exited = &exited
			r.episodes[n-1].PeakDemand = r.peak
		}
		if err := os.Remove(r.file); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.p.log.Error("stress episode record not removed", "file", r.file, "err", err)
		}
		r.p.log.Info("left stress", "episode", id, "peak_demand", r.peak, "duration", exited.Sub(tr.Entered))
		if cfg.Events != nil {
			cfg.Events.Exited(events.StressTransition{Episode: id, Entered: tr.Entered, Exited: &exited, PeakDemand: r.peak})
		}
		r.episode, r.peak = "", 0
	}
}

// armLocked schedules the Tick the machine asked for; a zero wake cancels it.
func (r *stressRun) armLocked(wake time.Time) {
	if wake.IsZero() || r.p.closed {
		if r.timer != nil {
			r.timer.Stop()
		}
		return
	}
	// The wake is on the configured clock, the timer on real time. A clock that does not
	// advance (a test's) would make the delay zero again and again, so it has a floor.
	d := max(wake.Sub(r.p.cfg.Clock.Now()), time.Millisecond)
	if r.timer == nil {
		r.timer = time.AfterFunc(d, r.tick)
		return
	}
	r.timer.Reset(d)
}

func (r *stressRun) tick() {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if r.p.closed {
		return
	}
	r.stepLocked(Tick)
}

func (r *stressRun) stopLocked() {
	if r.timer != nil {
		r.timer.Stop()
	}
}

// The episode record is one line: the entry time in Unix nanoseconds and the peak demand.
func writeEpisode(path string, entered time.Time, peak int) error {
	return writeFileSync(path, []byte(fmt.Sprintf("%d %d\n", entered.UnixNano(), peak)))
}

func readEpisode(path string) (time.Time, int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, 0, nil
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("mta: stress episode record: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return time.Time{}, 0, fmt.Errorf("mta: stress episode record %s: %q is not \"<nanoseconds> <peak>\"", path, b)
	}
	ns, err1 := strconv.ParseInt(f[0], 10, 64)
	peak, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, fmt.Errorf("mta: stress episode record %s: %q is not \"<nanoseconds> <peak>\"", path, b)
	}
	return time.Unix(0, ns).UTC(), peak, nil
}

// writeFileSync replaces path atomically and durably: temp file, fsync, rename, fsync the
// directory.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
