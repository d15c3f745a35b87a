package simulator

import (
	"fmt"
	"sort"
	"time"

	"github.com/mtastress/mtastress/alerts"
	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/mta"
	"github.com/mtastress/mtastress/scenarios"
)

// One configuration's run: its nodes, their MTA settings, the engine and the alert rules.

// planCandidateNodes names a candidate's n nodes of one model and gives their balancer weights.
// The scenario's nodes come first, in order; beyond them the weights repeat cyclically, so a
// balancer the scenario skews stays skewed, and an even one stays even. Extra nodes are named
// plan-<i>.
func planCandidateNodes(sc *scenarios.Scenario, model string, limit, n int) (
	[]events.Node, []float64) {
	nodes, weights := make([]events.Node, n), make([]float64, n)
	given := sc.Topology.Nodes
	for i := range n {
		weights[i] = given[i%len(given)].Weight
		name := fmt.Sprintf("plan-%d", i+1)
		if i < len(given) {
			name = given[i].Name
		}
		nodes[i] = events.Node{Node: name, Cluster: sc.Topology.Cluster, Model: model, Limit: limit}
	}
	return nodes, weights
}

// planCandidateRules are the MTA settings of one node of the candidate: the scenario's overrides,
// else the MTA's defaults, with wait_max and client_cap derived from the candidate's limit.
func planCandidateRules(sc *scenarios.Scenario, limit int) planRules {
	def := mta.DefaultConfig()
	r := planRules{limit: limit, slotWait: int64(def.SlotWait), cooldown: def.Cooldown,
		waitMax: 4 * limit, clientCap: max(limit/2, 1)}
	o := sc.MTA
	if o.SlotWait != nil {
		r.slotWait = int64(*o.SlotWait)
	}
	if o.Cooldown != nil {
		r.cooldown = *o.Cooldown
	}
	if o.WaitMax != nil {
		r.waitMax = *o.WaitMax
	}
	if o.ClientCap != nil {
		r.clientCap = *o.ClientCap
	}
	return r
}

// simulate runs one configuration and fills in its figures.
func simulatePlan(sc *scenarios.Scenario, cat *scenarios.Catalog, opts PlanOptions,
	c *PlanCandidate, nodes []events.Node, weights []float64) {
	tr := newPlanTraffic(sc, newPlanTiming(sc, opts.PerMessage), weights)
	rules := make([]planRules, len(nodes))
	names := make([]string, len(nodes))
	for i, n := range nodes {
		rules[i] = planCandidateRules(sc, n.Limit)
		// One address holds at most limit + wait_max connections: a cap at or above that
		// never binds, and then the engine need not count per address.
		if rules[i].clientCap < rules[i].limit+rules[i].waitMax {
			rules[i].clients = tr.clients
		}
		names[i] = n.Node
	}
	e := newPlanEngine(rules)
	e.run(tr)
	fillPlanCandidate(c, e, nodes, weights, sc.TotalDuration())

	cfg := alerts.RuleConfig{Settle: alerts.DefaultSettle, Catalog: cat,
		Rosters: map[string][]string{sc.Topology.Cluster: names}}
	c.AlertsPartial = c.Episodes > planAlertCap
	c.StressAlerts, c.FrequentAdvisories = planAlerts(nodes, e.trans, cfg)
}

// fillPlanCandidate turns the engine's counters into the report's figures.
func fillPlanCandidate(c *PlanCandidate, e *planEngine, nodes []events.Node, weights []float64,
	total time.Duration) {
	var blocked, waited int64
	var stress int64
	for i := range e.nodes {
		n := &e.nodes[i]
		c.Sessions += n.sessions
		blocked += n.blocked
		waited += n.waited
		stress += n.stressNS
		c.Episodes += n.episodes
		c.PeakActive = max(c.PeakActive, n.peakActive)
		c.PerNode = append(c.PerNode, PlanNode{Name: nodes[i].Node, Model: nodes[i].Model,
			ProcessLimit: nodes[i].Limit, Weight: weights[i], Sessions: n.sessions, Blocked: n.blocked,
			PeakActive: n.peakActive, PeakDemand: n.peakDemand, Episodes: n.episodes})
	}
	if c.Sessions > 0 {
		c.WaitedShare = float64(waited) / float64(c.Sessions)
		c.BlockedShare = float64(blocked) / float64(c.Sessions)
	}
	c.TimeInStressS = time.Duration(stress).Seconds()
	c.EpisodesPerWeek = planEpisodesPerWeek(e.trans, c.Episodes, total)
	c.P99WaitMS = planP99WaitMS(e)
}

// planEpisodesPerWeek scales a scenario shorter than a week up to one; over a longer scenario it
// is the most entries, over all nodes, in any window of 7 days.
func planEpisodesPerWeek(trans []planTransition, episodes int, total time.Duration) float64 {
	if total <= 0 {
		return 0
	}
	if total < alerts.Week {
		return float64(episodes) * float64(alerts.Week) / float64(total)
	}
	var entries []int64
	for _, t := range trans {
		if t.kind == mta.Entered {
			entries = append(entries, t.at)
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i] < entries[j] })
	most, from := 0, 0
	for i, at := range entries {
		for at-entries[from] >= int64(alerts.Week) {
			from++
		}
		most = max(most, i-from+1)
	}
	return float64(most)
}

// planP99WaitMS is the 99th percentile of the served sessions' slot waits, those served at once
// counting as zero.
func planP99WaitMS(e *planEngine) float64 {
	waited := e.waits.TotalCount()
	total := waited + e.zeroWaits
	if total == 0 || waited == 0 {
		return 0
	}
	// The top 1 % lies inside the sessions that waited: find its rank among them.
	rank := float64(total) * 0.99
	below := float64(e.zeroWaits)
	if rank <= below {
		return 0
	}
	q := 100 * (rank - below) / float64(waited)
	return float64(e.waits.ValueAtQuantile(min(q, 100))) / 1000
}
