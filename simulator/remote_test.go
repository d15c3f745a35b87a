package simulator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

// burstYAML overloads a T10 node briefly; no skip, so it can run against running systems.
const burstYAML = `
name: remote-burst
seed: 11
# From one host every session has the same client address: lift the per-client cap.
mta: {cooldown: 2s, slot_wait: 3s, client_cap: 40}
topology:
  cluster: remote
  nodes: [{name: far-1, model: T10}]
profiles:
  hog: {messages: 1, recipients: 1, hold: 1s..2s}
phases:
  - {name: burst, duration: 4s, rate: 25/s, mix: {hog: 1}}
expect:
  - {alert: stress, node: far-1, count: 1}
  - {peak_active: 10, node: far-1}
  - {lost: 0}
`

// TestReplayAgainstRunningSystems replays through the Remote target: it knows the MTAs only by
// their SMTP address, their state only through NATS, and the alerts only through MailHog's API,
// as against production nodes. The running systems are the embedded stack's, reached from
// outside.
func TestReplayAgainstRunningSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("replay takes about 15 s")
	}
	cat := scenarios.DefaultCatalog()
	sc, err := scenarios.Parse("remote-burst.yaml", []byte(burstYAML), cat)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := StartStack(ctx, sc, StackOptions{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	rm, err := NewRemote(sc, RemoteOptions{MTAs: st.Addrs(), NATSURL: st.NATS.URL(), MailHogURL: st.MailHog.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	rep, err := Replay(ctx, sc, rm, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Errorf("report did not pass: %+v", rep.Expectations)
	}
	if rep.DeliveriesChecked {
		t.Error("deliveries claimed checked against running MTAs")
	}
	for _, e := range rep.Expectations {
		if e.Name == "lost max=0" && !e.Skipped {
			t.Errorf("lost was not marked skipped: %+v", e)
		}
		if e.Name != "lost max=0" && e.Skipped {
			t.Errorf("%s skipped although NATS shows the node: %s", e.Name, e.Detail)
		}
	}
	n := rep.Nodes[0]
	if len(n.StressEpisodes) != 1 || n.PeakActive != 10 {
		t.Errorf("from the event stream: %d episodes, peak %d; want 1 and 10", len(n.StressEpisodes), n.PeakActive)
	}
	if len(rep.Alerts) != 1 || rep.Alerts[0].LatencyMS == nil {
		t.Errorf("alerts %+v, want one with a latency", rep.Alerts)
	}
}

func TestRemoteRefusesWhatItCannotDo(t *testing.T) {
	cat := scenarios.DefaultCatalog()
	sc, err := scenarios.Parse("remote-burst.yaml", []byte(burstYAML), cat)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRemote(sc, RemoteOptions{MTAs: []string{"a:25", "b:25"}, MailHogURL: "http://x"}); !errors.Is(err, ErrTarget) {
		t.Errorf("two addresses for one node: %v", err)
	}
	if _, err := NewRemote(sc, RemoteOptions{MTAs: []string{"a:25"}}); !errors.Is(err, ErrTarget) {
		t.Errorf("no MailHog: %v", err)
	}
	skip := *sc
	skip.Phases = append(append([]scenarios.Phase(nil), sc.Phases...), scenarios.Phase{Name: "later", Duration: time.Hour, Skip: true})
	rm, err := NewRemote(&skip, RemoteOptions{MTAs: []string{"127.0.0.1:1"}, MailHogURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Replay(context.Background(), &skip, rm, ReplayOptions{}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("a skip against running systems: %v", err)
	}
}
