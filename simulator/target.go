package simulator

import (
	"context"
	"time"

	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/testenv"
)

// Target is what a replay runs against: the embedded stack, or running systems.
type Target interface {
	// Addrs are the SMTP addresses of the scenario's nodes, in topology order.
	Addrs() []string
	// State is what is known of node i now; ok is false when nothing is.
	State(i int) (NodeState, bool)
	// Inbox lists the emails in the alert inbox (MailHog).
	Inbox(ctx context.Context) ([]testenv.MailHogMessage, error)
	// Deliveries tallies what reached the next hop (id → recipient → copies); ok is false when
	// the next hop is not the replay's to see.
	Deliveries() (map[string]map[string]int, bool)
	// Clock is the clock episodes are told on; Advance is only for the embedded stack.
	Clock() *Clock
	// Shared reports whether the target runs on the replay's shared clock, so skips can work,
	// and on loopback, so sessions may come from many 127.0.0.0/8 addresses.
	Shared() bool
	// Settings are the MTA settings the client's timeouts follow.
	Settings() TargetSettings
}

// NodeState is a node's load and history as the replay sees it.
type NodeState struct {
	Active, Waiting, QueueDepth, PeakActive int
	InStress                                bool
	Episodes                                []mta.Episode
}

// TargetSettings are the MTA timeouts a client must outwait.
type TargetSettings struct {
	SlotWait, CommandTimeout, Cooldown time.Duration
}

// The embedded stack as a Target.

func (st *Stack) Addrs() []string {
	out := make([]string, len(st.Nodes))
	for i, n := range st.Nodes {
		out[i] = n.Addr
	}
	return out
}

func (st *Stack) State(i int) (NodeState, bool) {
	s := st.Nodes[i].Server.Snapshot()
	return NodeState{Active: s.Active, Waiting: s.Waiting, QueueDepth: s.QueueDepth, PeakActive: s.PeakActive,
		InStress: s.InStress, Episodes: s.Episodes}, true
}

func (st *Stack) Inbox(ctx context.Context) ([]testenv.MailHogMessage, error) {
	return st.MailHog.Messages(ctx)
}

func (st *Stack) Deliveries() (map[string]map[string]int, bool) {
	return deliveries(st.Sink.Messages()), true
}

func (st *Stack) Clock() *Clock { return st.clock }
func (st *Stack) Shared() bool  { return true }

func (st *Stack) Settings() TargetSettings {
	c := st.Nodes[0].Config
	return TargetSettings{SlotWait: c.SlotWait, CommandTimeout: c.CommandTimeout, Cooldown: c.Cooldown}
}
