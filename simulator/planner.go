package simulator

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mtastress/mtastress/events"
	"github.com/mtastress/mtastress/scenarios"
)

// The virtual-time capacity planner (`mtastress plan`): it runs a scenario's traffic against
// every candidate configuration, each catalog model at 1..N nodes, with the MTA's stress state
// machine and the alert service's rules, and recommends the smallest one that stays out of
// stress. docs/planner.md describes the model and its limits.

// DefaultMaxBlocked is the share of sessions answered 421 a recommendation may have.
const DefaultMaxBlocked = 0.001

// PlanOptions tune a plan.
type PlanOptions struct {
	// Catalog lists the models to try; nil is scenarios.DefaultCatalog(). The scenario's own
	// `models:` overrides are applied on top.
	Catalog *scenarios.Catalog
	// MaxBlocked is the largest blocked_share a recommendation may have, used as given: 0
	// allows no 421 at all. The CLI defaults it to DefaultMaxBlocked.
	MaxBlocked float64
	// MaxNodes is the largest node count tried; 0 is the scenario's node count.
	MaxNodes int
	// PerMessage is a session's time per message when its profile has no hold; 0 is
	// DefaultPerMessage.
	PerMessage time.Duration
	// Workers is how many candidates run at once; 0 is GOMAXPROCS. Each runs on one goroutine.
	Workers int
}

// PlanReport is the planner's report (DESIGN.md "The planner's report").
type PlanReport struct {
	Scenario string `json:"scenario"`
	Seed     int64  `json:"seed"`
	// DurationS is the scenario's length in virtual time, skipped phases included.
	DurationS  float64         `json:"duration_s"`
	MaxBlocked float64         `json:"max_blocked"`
	Candidates []PlanCandidate `json:"candidates"`
	// Recommendation is nil (JSON null) when no candidate qualifies.
	Recommendation *Recommendation `json:"recommendation"`
	// SimulatedSessions and Elapsed measure the run itself, over all candidates.
	SimulatedSessions int64         `json:"simulated_sessions"`
	Elapsed           time.Duration `json:"-"`
}

// Recommendation names the configuration to buy.
type Recommendation struct {
	Model string `json:"model"`
	Nodes int    `json:"nodes"`
}

// PlanCandidate is what one configuration would live through.
type PlanCandidate struct {
	Model        string `json:"model"`
	ProcessLimit int    `json:"process_limit"` // of each node; the largest for PlanTopology
	Nodes        int    `json:"nodes"`
	Slots        int    `json:"slots"`    // process limits summed over the nodes
	Sessions     int64  `json:"sessions"` // attempted
	Episodes     int    `json:"episodes"` // stress episodes over the whole scenario, all nodes
	// EpisodesPerWeek is Episodes scaled to a week when the scenario is shorter than one;
	// otherwise the most entries in any 7-day window.
	EpisodesPerWeek    float64 `json:"episodes_per_week"`
	TimeInStressS      float64 `json:"time_in_stress_s"` // summed over nodes
	WaitedShare        float64 `json:"waited_share"`     // sessions that queued for a slot
	BlockedShare       float64 `json:"blocked_share"`    // sessions answered 421
	P99WaitMS          float64 `json:"p99_wait_ms"`      // of served sessions
	PeakActive         int     `json:"peak_active"`      // highest of any node
	StressAlerts       int     `json:"stress_alerts"`
	FrequentAdvisories int     `json:"frequent_advisories"`
	// AlertsPartial: the rules saw only the first planAlertCap episodes (2000), so the alert
	// counts are lower bounds. Such a candidate never qualifies.
	AlertsPartial bool       `json:"alerts_partial,omitempty"`
	Qualifies     bool       `json:"qualifies"`
	PerNode       []PlanNode `json:"per_node"`
}

// PlanNode is one node of a candidate.
type PlanNode struct {
	Name         string  `json:"name"`
	Model        string  `json:"model"`
	ProcessLimit int     `json:"process_limit"`
	Weight       float64 `json:"weight"`
	Sessions     int64   `json:"sessions"`
	Blocked      int64   `json:"blocked"`
	PeakActive   int     `json:"peak_active"`
	PeakDemand   int     `json:"peak_demand"` // active + waiting
	Episodes     int     `json:"episodes"`
}

// Plan runs every candidate against the scenario and picks the recommendation.
func Plan(sc *scenarios.Scenario, opts PlanOptions) (*PlanReport, error) {
	cat, err := opts.prepare(sc)
	if err != nil {
		return nil, err
	}
	maxNodes := opts.MaxNodes
	if maxNodes <= 0 {
		maxNodes = len(sc.Topology.Nodes)
	}
	start := time.Now()
	rep := &PlanReport{Scenario: sc.Name, Seed: sc.Seed, DurationS: sc.TotalDuration().Seconds(),
		MaxBlocked: opts.MaxBlocked}
	for _, m := range cat.Models {
		for n := 1; n <= maxNodes; n++ {
			rep.Candidates = append(rep.Candidates, PlanCandidate{
				Model: m.Name, ProcessLimit: m.ProcessLimit, Nodes: n, Slots: n * m.ProcessLimit})
		}
	}
	runCandidates(sc, cat, opts, rep.Candidates)
	for i := range rep.Candidates {
		c := &rep.Candidates[i]
		c.judge(opts.MaxBlocked)
		rep.SimulatedSessions += c.Sessions
	}
	rep.Recommendation = recommendPlan(rep.Candidates)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// prepare fills in the options' defaults and returns the catalog with the scenario's overrides.
func (opts *PlanOptions) prepare(sc *scenarios.Scenario) (*scenarios.Catalog, error) {
	if len(sc.Topology.Nodes) == 0 {
		return nil, fmt.Errorf("%w: scenario %q has no nodes", scenarios.ErrInvalid, sc.Name)
	}
	if opts.PerMessage <= 0 {
		opts.PerMessage = DefaultPerMessage
	}
	cat := opts.Catalog
	if cat == nil {
		cat = scenarios.DefaultCatalog()
	}
	return cat.WithOverrides(sc.Models), nil
}

// judge applies the recommendation's rule: at most one episode a week, and at most maxBlocked
// of the sessions answered 421.
func (c *PlanCandidate) judge(maxBlocked float64) {
	c.Qualifies = c.EpisodesPerWeek <= 1 && c.BlockedShare <= maxBlocked
}

// runCandidates simulates the candidates on a few goroutines; each candidate is independent
// and draws its own traffic from the scenario's seed.
func runCandidates(sc *scenarios.Scenario, cat *scenarios.Catalog, opts PlanOptions,
	cands []PlanCandidate) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(cands)) {
		wg.Go(func() {
			for i := range next {
				c := &cands[i]
				nodes, weights := planCandidateNodes(sc, c.Model, c.ProcessLimit, c.Nodes)
				simulatePlan(sc, cat, opts, c, nodes, weights)
			}
		})
	}
	for i := range cands {
		next <- i
	}
	close(next)
	wg.Wait()
}

// recommend picks the qualifying candidate with the fewest slots in all, fewer nodes on a tie.
func recommendPlan(cands []PlanCandidate) *Recommendation {
	var best *PlanCandidate
	for i := range cands {
		c := &cands[i]
		if !c.Qualifies {
			continue
		}
		if best == nil || c.Slots < best.Slots || (c.Slots == best.Slots && c.Nodes < best.Nodes) {
			best = c
		}
	}
	if best == nil {
		return nil
	}
	return &Recommendation{Model: best.Model, Nodes: best.Nodes}
}

// PlanTopology simulates the scenario's own topology, each node with its own model, as a live
// replay runs it: the planner's prediction to hold beside the replay's report (peak active and
// episodes per node). Its Model names the nodes' models joined by "+" when they differ.
func PlanTopology(sc *scenarios.Scenario, opts PlanOptions) (*PlanCandidate, error) {
	cat, err := opts.prepare(sc)
	if err != nil {
		return nil, err
	}
	c := &PlanCandidate{Nodes: len(sc.Topology.Nodes)}
	var models []string
	nodes := make([]events.Node, len(sc.Topology.Nodes))
	for i, n := range sc.Topology.Nodes {
		nodes[i] = events.Node{Node: n.Name, Cluster: sc.Topology.Cluster, Model: n.Model,
			Limit: n.ProcessLimit}
		c.Slots += n.ProcessLimit
		c.ProcessLimit = max(c.ProcessLimit, n.ProcessLimit)
		if !slices.Contains(models, n.Model) {
			models = append(models, n.Model)
		}
	}
	c.Model = strings.Join(models, "+")
	simulatePlan(sc, cat, opts, c, nodes, nodeWeights(sc.Topology.Nodes))
	c.judge(opts.MaxBlocked)
	return c, nil
}
