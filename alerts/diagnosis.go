package alerts

import (
	"sort"
	"strconv"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

// advisory is the evidence behind one frequent advisory, as the message states it.
type advisory struct {
	Cluster   string
	Node      string // the node advised; empty for a cluster-wide verdict
	Diagnosis string
	Trigger   time.Time // the entry that made two in a week
	From      time.Time // the start of that week
	Roster    []nodeEvidence
	Capacity  capacityAdvice
}

// nodeEvidence is what the advisory says about one node of the roster.
type nodeEvidence struct {
	Node    string
	Model   string
	Limit   int
	Entries []Entry // entries in the week
	Peak    int     // the highest demand of those episodes
	Served  uint64  // sessions served in the week
	Share   float64 // of the cluster's sessions in the week; -1 when none were counted
	Next    scenarios.Model
	HasNext bool
}

// capacityAdvice sizes a cluster for the demand of the week's episodes taken together.
type capacityAdvice struct {
	Demand    int // sum of the stressed nodes' peaks
	Model     string
	Limit     int // of the smallest model in the cluster
	Nodes     int // nodes of that model that would cover Demand
	Bigger    scenarios.Model
	HasBigger bool // a model that covers Demand spread over today's node count
}

// advise diagnoses a pending advisory and renders it. A cluster-wide verdict covers every
// stressed node, so their own advisories of the same week are not sent.
func (st *State) advise(p Pending, cfg RuleConfig) (SendAlert, bool) {
	n := st.Nodes[nodeKey(p.Cluster, p.Node)]
	if n == nil || n.advisedNear(p.Trigger) {
		return SendAlert{}, false
	}
	from := p.Trigger.Add(-Week)
	roster := st.roster(p.Cluster, from, p.Due, cfg)
	var stressed []*NodeState
	for _, r := range roster {
		if len(r.entriesIn(from, p.Due)) > 0 {
			stressed = append(stressed, r)
		}
	}
	a := advisory{
		Cluster:   p.Cluster,
		Node:      n.Node,
		Diagnosis: diagnose(len(roster), len(stressed)),
		Trigger:   p.Trigger,
		From:      from,
		Roster:    evidence(roster, from, p.Due, cfg.Catalog),
	}
	covered := []*NodeState{n}
	if a.Diagnosis == DiagCapacity || a.Diagnosis == DiagPartial {
		a.Node, covered = "", stressed
		a.Capacity = sizeCluster(a.Roster, cfg.Catalog)
	}

	key := frequentKey(a.Cluster, a.Node, a.Trigger)
	if _, done := st.Raised[key]; done {
		return SendAlert{}, false
	}
	st.raise(key, p.Trigger)
	for _, c := range covered {
		c.LastAdvisory = p.Trigger
	}
	return frequentAlert(a, key), true
}

// frequentKey names an advisory; "*" stands for the whole cluster.
func frequentKey(cluster, node string, trigger time.Time) string {
	if node == "" {
		node = "*"
	}
	return "frequent:" + cluster + ":" + node + ":" + strconv.FormatInt(trigger.UnixNano(), 10)
}

// diagnose implements DESIGN.md's verdicts from the roster's size and how many had an entry.
func diagnose(roster, stressed int) string {
	switch {
	case roster <= 1:
		return DiagStandalone
	case stressed == 1:
		return DiagLoadBalancing
	case stressed >= roster:
		return DiagCapacity
	default:
		return DiagPartial
	}
}

// roster returns the cluster's nodes for a verdict over (from, to]: the configured list, or the
// nodes heard from in the week; a node with an entry in the week is always on it.
func (st *State) roster(cluster string, from, to time.Time, cfg RuleConfig) []*NodeState {
	byName := make(map[string]*NodeState)
	list, configured := cfg.Rosters[cluster]
	for _, name := range list {
		byName[name] = &NodeState{Cluster: cluster, Node: name} // until it is heard from
	}
	for _, n := range st.clusterNodes(cluster) {
		_, listed := byName[n.Node]
		heard := !configured && n.LastSample.After(from)
		if listed || heard || len(n.entriesIn(from, to)) > 0 {
			byName[n.Node] = n
		}
	}
	out := make([]*NodeState, 0, len(byName))
	for _, n := range byName {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// evidence gathers each roster node's entries, peak, sessions and share of the week.
func evidence(roster []*NodeState, from, to time.Time, cat Catalog) []nodeEvidence {
	out := make([]nodeEvidence, len(roster))
	var total uint64
	for i, n := range roster {
		e := nodeEvidence{Node: n.Node, Model: n.Model, Limit: n.Limit, Share: -1}
		e.Entries = n.entriesIn(from, to)
		for _, en := range e.Entries {
			// In stress the demand was at least the limit, whatever the samples caught.
			e.Peak = max(e.Peak, en.Peak, n.Limit)
		}
		e.Served = n.servedIn(from, to)
		total += e.Served
		if len(e.Entries) > 0 {
			e.Next, e.HasNext = nextModel(cat, n.Model, n.Limit, e.Peak)
		}
		out[i] = e
	}
	if total > 0 {
		for i := range out {
			out[i].Share = float64(out[i].Served) / float64(total)
		}
	}
	return out
}

// nextModel is the catalog's next model whose limit covers the peak demand: the smallest that
// covers it, or simply the next one when the demand only reached the limit.
func nextModel(cat Catalog, model string, limit, peak int) (scenarios.Model, bool) {
	if cat == nil {
		return scenarios.Model{}, false
	}
	m, ok := cat.Covering(peak)
	if !ok {
		return scenarios.Model{}, false // no model is big enough: only more nodes help
	}
	if m.ProcessLimit > limit {
		return m, true
	}
	return cat.Next(model)
}

// sizeCluster suggests nodes of the cluster's smallest model, or a bigger model for each of
// today's nodes, to cover the stressed nodes' peaks taken together.
//
// TODO: summing per-node peaks assumes they coincide; the better design keeps a per-cluster
// demand series from the samples and sizes for its real peak.
func sizeCluster(roster []nodeEvidence, cat Catalog) capacityAdvice {
	var c capacityAdvice
	for _, e := range roster {
		c.Demand += e.Peak
		if e.Limit > 0 && (c.Limit == 0 || e.Limit < c.Limit) {
			c.Model, c.Limit = e.Model, e.Limit
		}
	}
	if c.Limit == 0 {
		return c
	}
	c.Nodes = max((c.Demand+c.Limit-1)/c.Limit, len(roster)+1)
	perNode := (c.Demand + len(roster) - 1) / len(roster)
	c.Bigger, c.HasBigger = nextModel(cat, c.Model, c.Limit, perNode)
	return c
}
