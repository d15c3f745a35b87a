package simulator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mtastress/mtastress/scenarios"
)

// plannerMixedScenario exercises what the built-ins may not: two weighted nodes, a ramp, a skip, a
// drip, several profiles and a null sender.
const plannerMixedScenario = `
name: mixed
description: Everything the traffic draws.
seed: 5
mta: {cooldown: 2s, stress_timeout: 3s}
topology:
  cluster: c1
  nodes:
    - {name: a, model: T10, weight: 3}
    - {name: b, model: T10}
profiles:
  normal: {messages: 0..2, recipients: 1..3, size: 1KiB..4KiB}
  slow: {messages: 1, drip: 1B/2s, size: 100B, hold: 60s, clients: 5}
  bounce: {sender: "<>", recipients: 1, invalid: 0.7, hold: 1s..3s}
phases:
  - {name: one, duration: 20s, rate: 5/s, mix: {normal: 2, slow: 1}}
  - {name: gap, duration: 1h, skip: true}
  - {name: two, duration: 10s, rate: 20/s, ramp: 4s, mix: {bounce: 1, normal: 1}}
  - {name: still, duration: 5s, rate: 0/s, mix: {normal: 1}}
expect:
  - {alert: frequent, count: 0}
`

func loadPlannerScenarios(t *testing.T) []*scenarios.Scenario {
	t.Helper()
	var out []*scenarios.Scenario
	for _, info := range scenarios.Builtins() {
		sc, err := scenarios.Builtin(info.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc)
	}
	sc, err := scenarios.Parse("mixed.yaml", []byte(plannerMixedScenario), nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, sc)
}

// TestPlannerTrafficMatchesReplay holds the planner's draws to the replay's: same starts,
// nodes, clients and holds, session by session. If drawSession or planPhase changes its draws,
// this fails until the planner's draw does the same.
func TestPlannerTrafficMatchesReplay(t *testing.T) {
	for _, sc := range loadPlannerScenarios(t) {
		t.Run(sc.Name, func(t *testing.T) {
			tm := newPlanTiming(sc, DefaultPerMessage)
			tr := newPlanTraffic(sc, tm, nodeWeights(sc.Topology.Nodes))
			var start time.Duration
			var a planArrival
			for i, ph := range sc.Phases {
				if ph.Skip {
					start += ph.Duration
					continue
				}
				plans, err := planPhase(sc, i, start, 0)
				if err != nil {
					t.Fatal(err)
				}
				for j, p := range plans {
					if !tr.next(&a) {
						t.Fatalf("phase %s: the planner's traffic ended at session %d of %d", ph.Name, j, len(plans))
					}
					checkPlanArrival(t, tm, p, start, a)
				}
				start += ph.Duration
			}
			if tr.next(&a) {
				t.Fatalf("the planner draws a session at %v that the replay does not", time.Duration(a.at))
			}
		})
	}
}

func checkPlanArrival(t *testing.T, tm planTiming, p sessionPlan, phaseStart time.Duration,
	a planArrival) {
	t.Helper()
	c := p.Client.As4()
	client := int32(int(c[1]-1)*planAddrBlock + int(c[2])*254 + int(c[3]-1))
	if time.Duration(a.at) != phaseStart+p.Start || int(a.node) != p.Node || a.client != client {
		t.Fatalf("session %d: planner at %v node %d client %d; replay at %v node %d client %s",
			p.Index, time.Duration(a.at), a.node, a.client, phaseStart+p.Start, p.Node, p.Client)
	}
	// The hold the replay's client would keep, from its plan, under normal and stress settings:
	// each message a message's time, its data, and the end at the hard error limit, which its
	// refused recipients (nobody…@) count toward.
	hold := func(timeout int64, hardErrors int) int64 {
		var want planSpan
		errs := 0
		for _, m := range p.Messages {
			want.d += tm.perMessage
			refused := 0
			for _, r := range m.Rcpts {
				if strings.HasPrefix(r, "nobody") {
					refused++
				}
			}
			if errs += refused; refused > 0 && errs >= hardErrors {
				return want.d
			}
			if p.Drip != nil && refused < len(m.Rcpts) {
				data := int64(float64(m.Size) / float64(p.Drip.BytesPer) * float64(p.Drip.Per))
				want.addData(data, p.Drip, timeout, tm.minDataRate)
			}
		}
		want.idle(int64(p.Hold), timeout)
		return want.d
	}
	if want := hold(tm.commandTimeout, tm.hardErrors); a.normal != want {
		t.Fatalf("session %d (%s): planner holds %v, the replay's plan %v", p.Index, p.Profile,
			time.Duration(a.normal), time.Duration(want))
	}
	if want := hold(tm.stressTimeout, tm.stressHardErrors); a.stress != want {
		t.Fatalf("session %d (%s): planner holds %v in stress, the replay's plan %v", p.Index, p.Profile,
			time.Duration(a.stress), time.Duration(want))
	}
	if a.stress > a.normal {
		t.Fatalf("session %d: holds longer under stress (%v) than without (%v)", p.Index,
			time.Duration(a.stress), time.Duration(a.normal))
	}
}

func TestPlannerDripIsCutByTheDataDeadline(t *testing.T) {
	// 1 byte every 2 s is 0.5 B/s, a thousandth of the MTA's minimum data rate: the deadline
	// catches up with the client just after the command timeout.
	drip := &scenarios.Rate{BytesPer: 1, Per: 2 * time.Second}
	var s planSpan
	s.addData(int64(200*time.Second), drip, int64(10*time.Second), 500)
	if !s.cut || s.d < int64(10*time.Second) || s.d > int64(10100*time.Millisecond) {
		t.Fatalf("drip span %v cut=%v, want cut just after 10 s", time.Duration(s.d), s.cut)
	}
	s.idle(int64(time.Hour), int64(10*time.Second))
	if s.d > int64(10100*time.Millisecond) {
		t.Fatalf("a cut session went on idling: %v", time.Duration(s.d))
	}
}

func TestPlannerOnBuiltinScenarios(t *testing.T) {
	cat := scenarios.DefaultCatalog()
	for _, sc := range loadPlannerScenarios(t) {
		t.Run(sc.Name, func(t *testing.T) {
			rep, err := Plan(sc, PlanOptions{Catalog: cat, MaxBlocked: DefaultMaxBlocked})
			if err != nil {
				t.Fatal(err)
			}
			if want := len(cat.Models) * len(sc.Topology.Nodes); len(rep.Candidates) != want {
				t.Fatalf("%d candidates, want %d (every model × 1..%d nodes)",
					len(rep.Candidates), want, len(sc.Topology.Nodes))
			}
			checkPlanCandidates(t, rep)
			if rep.Recommendation == nil {
				t.Fatal("no recommendation; the largest model should do")
			}
			var text strings.Builder
			rep.WriteText(&text)
			if !strings.Contains(text.String(), "recommendation: "+rep.Recommendation.Model) {
				t.Errorf("text report does not state the recommendation:\n%s", text.String())
			}
		})
	}
}

// checkPlanCandidates holds every candidate to sane figures and the recommendation to its rule.
func checkPlanCandidates(t *testing.T, rep *PlanReport) {
	t.Helper()
	sessions := rep.Candidates[0].Sessions
	var rec *PlanCandidate
	for i := range rep.Candidates {
		c := &rep.Candidates[i]
		if c.Sessions != sessions || sessions == 0 {
			t.Errorf("%s × %d: %d sessions, want the same traffic (%d) for every candidate",
				c.Model, c.Nodes, c.Sessions, sessions)
		}
		for name, share := range map[string]float64{"waited": c.WaitedShare, "blocked": c.BlockedShare} {
			if share < 0 || share > 1 {
				t.Errorf("%s × %d: %s share %g outside 0..1", c.Model, c.Nodes, name, share)
			}
		}
		if c.PeakActive > c.ProcessLimit || c.TimeInStressS < 0 || c.P99WaitMS < 0 {
			t.Errorf("%s × %d: peak %d over limit %d, or negative time",
				c.Model, c.Nodes, c.PeakActive, c.ProcessLimit)
		}
		// The rules raise one "MTA Stress" per episode.
		if c.StressAlerts != c.Episodes {
			t.Errorf("%s × %d: %d stress alerts for %d episodes",
				c.Model, c.Nodes, c.StressAlerts, c.Episodes)
		}
		if c.Episodes > 0 && c.PeakActive != c.ProcessLimit {
			t.Errorf("%s × %d: in stress without reaching the limit (peak %d)",
				c.Model, c.Nodes, c.PeakActive)
		}
		if c.Model == rep.Recommendation.Model && c.Nodes == rep.Recommendation.Nodes {
			rec = c
		}
	}
	if rec == nil || !rec.Qualifies || rec.EpisodesPerWeek > 1 || rec.BlockedShare > rep.MaxBlocked {
		t.Fatalf("recommendation %+v does not qualify: %+v", rep.Recommendation, rec)
	}
	for _, c := range rep.Candidates {
		if c.Qualifies && c.Slots < rec.Slots {
			t.Errorf("%s × %d qualifies with %d slots, fewer than the recommended %d",
				c.Model, c.Nodes, c.Slots, rec.Slots)
		}
	}
}

func TestPlannerPredictsTheScenariosOwnExpectations(t *testing.T) {
	// spam-burst's own topology, as a replay runs it: one episode, one alert, no advisory, and
	// the limit reached (its expect block). The T10 × 1 candidate of Plan is the same thing.
	sc, err := scenarios.Builtin("spam-burst", nil)
	if err != nil {
		t.Fatal(err)
	}
	own, err := PlanTopology(sc, PlanOptions{MaxBlocked: DefaultMaxBlocked})
	if err != nil {
		t.Fatal(err)
	}
	n := own.PerNode[0]
	if own.Model != "T10" || n.Name != "edge-1" || n.Episodes != 1 || own.StressAlerts != 1 ||
		own.FrequentAdvisories != 0 || n.PeakActive != 10 {
		t.Fatalf("spam-burst as written: %+v; want edge-1 with 1 episode, 1 stress alert, "+
			"no advisory, peak 10", own)
	}
	rep, err := Plan(sc, PlanOptions{MaxBlocked: DefaultMaxBlocked})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Candidates[0]
	c.Qualifies, own.Qualifies = false, false
	if diff := cmp.Diff(*own, c); diff != "" {
		t.Errorf("T10 × 1 differs from the scenario's own topology (-own +candidate):\n%s", diff)
	}
}

func TestPlannerCountsFrequentAdvisories(t *testing.T) {
	// Two bursts a day apart on a stand-alone node: two entries in a week.
	yaml := strings.Replace(plannerMixedScenario, "    - {name: b, model: T10}\n", "", 1)
	yaml = strings.Replace(yaml, "duration: 1h, skip", "duration: 1d, skip", 1)
	sc, err := scenarios.Parse("twice.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Plan(sc, PlanOptions{MaxBlocked: DefaultMaxBlocked})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Candidates[0]
	if c.Episodes < 2 || c.FrequentAdvisories != 1 {
		t.Fatalf("T10 × 1: %d episodes, %d frequent advisories; want at least 2 and exactly 1",
			c.Episodes, c.FrequentAdvisories)
	}
}

func TestPlannerWritesJSONAndHTML(t *testing.T) {
	sc, err := scenarios.Builtin("spam-burst", nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Plan(sc, PlanOptions{MaxBlocked: DefaultMaxBlocked})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "plan.json"), filepath.Join(dir, "plan.html")
	if err := rep.WriteJSON(jsonPath); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(htmlPath); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Candidates     []map[string]any `json:"candidates"`
		Recommendation map[string]any   `json:"recommendation"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"model", "nodes", "sessions", "episodes_per_week", "time_in_stress_s",
		"waited_share", "blocked_share", "p99_wait_ms", "stress_alerts", "frequent_advisories"} {
		if _, ok := doc.Candidates[0][k]; !ok {
			t.Errorf("candidate JSON lacks %q", k)
		}
	}
	rec := rep.Recommendation
	if doc.Recommendation["model"] != rec.Model || doc.Recommendation["nodes"] != float64(rec.Nodes) {
		t.Errorf("recommendation JSON %v, want %+v", doc.Recommendation, rep.Recommendation)
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), rec.Model) {
		t.Error("the HTML page has no chart or does not name the recommendation")
	}
}
