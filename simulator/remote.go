package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/scenarios"
	"github.com/mtastress/mtastress/testenv"
)

// ErrTarget means the running systems named on the command line cannot be used (exit code 2 for
// a bad flag, 3 when they do not answer).
var ErrTarget = errors.New("bad target")

// RemoteOptions name running systems to replay against.
type RemoteOptions struct {
	MTAs       []string // host:port of each scenario node, in topology order
	NATSURL    string   // optional: node load and stress come from the event stream
	MailHogURL string   // required: where the alert service's emails land
	Logger     *slog.Logger
}

// Remote is a Target made of running MTAs, their NATS and the MailHog their alerts reach. There
// is no shared clock (skips are refused), clients connect from the host's own address, and the
// next hop is not the replay's, so lost mail cannot be counted.
type Remote struct {
	sc      *scenarios.Scenario
	opts    RemoteOptions
	clock   *Clock
	started time.Time
	nc      *nats.Conn

	mu    sync.Mutex
	nodes []remoteNode
	index map[string]int
}

type remoteNode struct {
	seen  bool
	state NodeState
}

// NewRemote checks the options and, with a NATS URL, starts following the nodes' events.
func NewRemote(sc *scenarios.Scenario, opts RemoteOptions) (*Remote, error) {
	if len(opts.MTAs) != len(sc.Topology.Nodes) {
		return nil, fmt.Errorf("%w: %d --mta addresses for %d scenario nodes (give one per node, in topology order)",
			ErrTarget, len(opts.MTAs), len(sc.Topology.Nodes))
	}
	if opts.MailHogURL == "" {
		return nil, fmt.Errorf("%w: --mailhog URL is needed to check the alerts of running systems", ErrTarget)
	}
	rm := &Remote{sc: sc, opts: opts, clock: NewClock(), started: time.Now(),
		nodes: make([]remoteNode, len(sc.Topology.Nodes)), index: map[string]int{}}
	for i, n := range sc.Topology.Nodes {
		rm.index[n.Name] = i
	}
	if opts.NATSURL != "" {
		if err := rm.follow(); err != nil {
			return nil, err
		}
	}
	return rm, nil
}

// follow subscribes to the scenario cluster's load and stress subjects.
func (rm *Remote) follow() error {
	nc, err := nats.Connect(rm.opts.NATSURL, nats.Name("mtastress-replay"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("%w: nats %s: %v", ErrEnvironment, rm.opts.NATSURL, err)
	}
	c := rm.sc.Topology.Cluster
	for _, subj := range []string{events.LoadSubject(c, "*"), events.StressSubject(c, "*")} {
		if _, err := nc.Subscribe(subj, rm.onEvent); err != nil {
			nc.Close()
			return fmt.Errorf("%w: subscribe %s: %v", ErrEnvironment, subj, err)
		}
	}
	rm.nc = nc
	return nc.Flush()
}

func (rm *Remote) onEvent(m *nats.Msg) {
	ev, err := events.Decode(m.Data)
	if err != nil {
		rm.log().Warn("event not understood", "subject", m.Subject, "err", err)
		return
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	switch {
	case ev.Sample != nil:
		i, ok := rm.index[ev.Sample.Node.Node]
		if !ok {
			return
		}
		s := ev.Sample
		n := &rm.nodes[i]
		n.seen = true
		n.state.Active, n.state.Waiting, n.state.QueueDepth, n.state.InStress = s.Active, s.Waiting, s.QueueDepth, s.Stress
		// A sample each second can miss the moment all slots were taken; demand at or over the
		// limit since the last sample means they were.
		n.state.PeakActive = max(n.state.PeakActive, s.Active, min(s.PeakDemand, s.Limit))
	case ev.Transition != nil:
		i, ok := rm.index[ev.Transition.Node.Node]
		if !ok {
			return
		}
		rm.nodes[i].seen = true
		rm.applyTransition(&rm.nodes[i].state, ev)
	}
}

// applyTransition records an entry or an exit. Caller holds mu.
func (rm *Remote) applyTransition(st *NodeState, ev *events.Event) {
	t := ev.Transition
	for j := range st.Episodes {
		if st.Episodes[j].ID == t.Episode {
			if t.Exited != nil {
				st.Episodes[j].Exited = t.Exited
				st.InStress = false
			}
			return
		}
	}
	// Only episodes of this replay count: the stream may carry older ones.
	if t.Entered.Before(rm.started.Add(-time.Minute)) {
		return
	}
	st.Episodes = append(st.Episodes, mta.Episode{ID: t.Episode, Entered: t.Entered, Exited: t.Exited, PeakDemand: t.PeakDemand})
	st.InStress = t.Exited == nil
}

func (rm *Remote) log() *slog.Logger {
	if rm.opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rm.opts.Logger
}

// Close stops following events.
func (rm *Remote) Close() {
	if rm.nc != nil {
		rm.nc.Close()
	}
}

func (rm *Remote) Addrs() []string { return rm.opts.MTAs }

func (rm *Remote) State(i int) (NodeState, bool) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	n := rm.nodes[i]
	st := n.state
	st.Episodes = append([]mta.Episode(nil), n.state.Episodes...)
	return st, n.seen
}

// Inbox lists the alert emails of this replay: stored since it started, for its cluster.
func (rm *Remote) Inbox(ctx context.Context) ([]testenv.MailHogMessage, error) {
	all, err := testenv.FetchMailHogMessages(ctx, rm.opts.MailHogURL)
	if err != nil {
		return nil, fmt.Errorf("%w: mailhog: %v", ErrEnvironment, err)
	}
	var out []testenv.MailHogMessage
	for _, m := range all {
		if m.Created.Before(rm.started.Add(-time.Second)) {
			continue
		}
		if c := header(m, hdrCluster); c != "" && !strings.EqualFold(c, rm.sc.Topology.Cluster) {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func (rm *Remote) Deliveries() (map[string]map[string]int, bool) { return nil, false }
func (rm *Remote) Clock() *Clock                                 { return rm.clock }
func (rm *Remote) Shared() bool                                  { return false }

// Settings are the MTA defaults with the scenario's overrides: the running nodes' own settings
// are not visible from here, so the client waits as long as the scenario says they are.
func (rm *Remote) Settings() TargetSettings {
	c := nodeConfig(rm.sc, rm.sc.Topology.Nodes[0], "", "")
	return TargetSettings{SlotWait: c.SlotWait, CommandTimeout: c.CommandTimeout, Cooldown: c.Cooldown}
}
