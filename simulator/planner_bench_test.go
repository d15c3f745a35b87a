package simulator

import (
	"testing"

	"github.com/mtastress/mtastress/scenarios"
)

// plannerBenchScenario is one T100 node at about 95 % of its limit: 95 sessions a second holding
// their slot for a second on average, so it waits, enters stress and blocks now and then,
// and every path of the engine runs. 10 000 s is about 950 000 sessions.
const plannerBenchScenario = `
name: bench
description: One T100 node near its limit.
seed: 11
topology:
  cluster: bench
  nodes:
    - {name: n1, model: T100}
profiles:
  steady: {messages: 1, sender: a@example.net, hold: 0.5s..1.5s}
phases:
  - {name: steady, duration: 10000s, rate: 95/s, mix: {steady: 1}}
expect:
  - {alert: stress, count: 0}
`

func BenchmarkPlannerSessions(b *testing.B) {
	sc, err := scenarios.Parse("bench.yaml", []byte(plannerBenchScenario), scenarios.DefaultCatalog())
	if err != nil {
		b.Fatal(err)
	}
	tm := newPlanTiming(sc, DefaultPerMessage)
	r := planCandidateRules(sc, 100)
	var sessions int64
	b.ReportAllocs()
	for b.Loop() {
		tr := newPlanTraffic(sc, tm, []float64{1})
		r.clients = tr.clients
		e := newPlanEngine([]planRules{r})
		e.run(tr)
		sessions += e.nodes[0].sessions
	}
	b.ReportMetric(float64(sessions)/b.Elapsed().Seconds(), "sessions/s")
	b.ReportMetric(float64(sessions)/float64(b.N), "sessions/op")
}
