package simulator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mtastress/mtastress/scenarios"
)

// Report is the replay report (DESIGN.md "The replay report").
type Report struct {
	Passed       bool                `json:"passed"`
	Scenario     string              `json:"scenario"`
	Seed         int64               `json:"seed"`
	Nodes        []NodeReport        `json:"nodes"`
	Alerts       []AlertReport       `json:"alerts"`
	Expectations []ExpectationResult `json:"expectations"`
	Latency      LatencyReport       `json:"latency"`
	// StartedAt is the real time the traffic began; the *_s fields count seconds from it.
	StartedAt  time.Time    `json:"started_at"`
	DurationMS int64        `json:"duration_ms"`
	Skips      []SkipReport `json:"skips"`
	// Phases are the live phases, each with the real second its traffic began.
	Phases []PhaseReport `json:"phases"`
	// DeliveriesChecked is false against running MTAs, whose next hop the replay cannot see:
	// delivered, lost and duplicated are then not counted.
	DeliveriesChecked bool `json:"deliveries_checked"`
}

// PhaseReport is a live phase: its traffic began at real second At.
type PhaseReport struct {
	Name string  `json:"name"`
	At   float64 `json:"at_s"`
}

// SkipReport is a skip phase: the shared clock jumped by Duration at real second At.
type SkipReport struct {
	Name     string  `json:"name"`
	At       float64 `json:"at_s"`
	Duration string  `json:"duration"`
}

// NodeReport is what one node did.
type NodeReport struct {
	Name           string          `json:"name"`
	Model          string          `json:"model"`
	ProcessLimit   int             `json:"process_limit"`
	PeakActive     int             `json:"peak_active"`
	StressEpisodes []EpisodeReport `json:"stress_episodes"`
	Sessions       SessionCounts   `json:"sessions"`
	Messages       MessageCounts   `json:"messages"`
	// Load is the node's active and waiting sessions over the run, for charts.
	Load []Point `json:"load"`
}

// EpisodeReport is one stress episode, in RFC 3339 on the shared clock.
type EpisodeReport struct {
	ID      string     `json:"id"`
	Entered time.Time  `json:"entered"`
	Exited  *time.Time `json:"exited"`
	// EnteredS and ExitedS are the same moments in real seconds since the start, for charts.
	EnteredS float64  `json:"entered_s"`
	ExitedS  *float64 `json:"exited_s"`
}

// SessionCounts counts client sessions.
type SessionCounts struct {
	Attempted  int `json:"attempted"`
	Served     int `json:"served"`
	Tempfailed int `json:"tempfailed"` // answered any 421
	Rejected   int `json:"rejected"`
}

// MessageCounts counts messages, not recipients.
type MessageCounts struct {
	Accepted   int `json:"accepted"`   // got a 250 at the client
	Delivered  int `json:"delivered"`  // every accepted recipient reached the next hop
	Duplicated int `json:"duplicated"` // some recipient got it more than once
	Lost       int `json:"lost"`       // some accepted recipient never got it
}

// AlertReport is an alert found in MailHog, or an expected one that was not.
type AlertReport struct {
	Kind           string `json:"kind"`
	Node           string `json:"node"`
	Cluster        string `json:"cluster"`
	Diagnosis      string `json:"diagnosis,omitempty"`
	Subject        string `json:"subject"`
	FoundInMailHog bool   `json:"found_in_mailhog"`
	LatencyMS      *int64 `json:"latency_ms"`
	// StoredS is when MailHog stored it, in real seconds since the start.
	StoredS *float64 `json:"stored_s"`
}

// ExpectationResult is one line of the scenario's expect block, checked.
type ExpectationResult struct {
	Name   string `json:"name"`
	Line   int    `json:"line"` // of the item in the scenario file
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
	// Skipped marks an expectation the target cannot show; it does not fail the run.
	Skipped bool `json:"skipped,omitempty"`
}

// LatencyReport summarises the clients' view, from HDR histograms.
type LatencyReport struct {
	SessionP50MS  int64 `json:"session_p50_ms"`
	SessionP99MS  int64 `json:"session_p99_ms"`
	SlotWaitP50MS int64 `json:"slot_wait_p50_ms"`
	SlotWaitP99MS int64 `json:"slot_wait_p99_ms"`
	SlotWaitMaxMS int64 `json:"slot_wait_max_ms"`
}

func (r *replay) report(found []foundAlert) *Report {
	rep := &Report{Scenario: r.sc.Name, Seed: r.sc.Seed, StartedAt: r.series.start, Skips: r.skips, Phases: r.phases}
	delivered, checked := r.tg.Deliveries()
	rep.DeliveriesChecked = checked
	for i, n := range r.sc.Topology.Nodes {
		rep.Nodes = append(rep.Nodes, r.nodeReport(i, n, delivered, checked))
	}
	rep.Alerts = r.alertReports(found)
	rep.Latency = r.latency()
	rep.Expectations = r.check(rep, found)
	rep.Passed = true
	for _, e := range rep.Expectations {
		rep.Passed = rep.Passed && e.Passed
	}
	return rep
}

func (r *replay) nodeReport(i int, n scenarios.Node, delivered map[string]map[string]int, checked bool) NodeReport {
	snap, _ := r.tg.State(i)
	nr := NodeReport{Name: n.Name, Model: n.Model, ProcessLimit: n.ProcessLimit, PeakActive: snap.PeakActive,
		StressEpisodes: []EpisodeReport{}, Load: r.series.points(i)}
	for _, e := range snap.Episodes {
		er := EpisodeReport{ID: e.ID, Entered: e.Entered, Exited: e.Exited, EnteredS: r.sinceStart(e.Entered)}
		if e.Exited != nil {
			x := r.sinceStart(*e.Exited)
			er.ExitedS = &x
		}
		nr.StressEpisodes = append(nr.StressEpisodes, er)
	}
	for j, p := range r.plans {
		if p.Node != i {
			continue
		}
		res := r.results[j]
		nr.Sessions.Attempted++
		nr.Sessions.Served += b2i(res.Served)
		nr.Sessions.Tempfailed += b2i(res.Tempfailed)
		nr.Sessions.Rejected += b2i(res.Rejected)
		for _, m := range res.Accepted {
			nr.Messages.Accepted++
			if !checked {
				continue
			}
			lost, dup := false, false
			for _, rcpt := range m.Rcpts {
				c := delivered[m.ID][rcpt]
				lost = lost || c == 0
				dup = dup || c > 1
			}
			nr.Messages.Lost += b2i(lost)
			nr.Messages.Duplicated += b2i(dup)
			nr.Messages.Delivered += b2i(!lost)
		}
	}
	return nr
}

// alertReports lists every alert found, with its latency from the entry that caused it, then
// one line for each expected alert that is missing.
func (r *replay) alertReports(found []foundAlert) []AlertReport {
	out := []AlertReport{}
	for _, a := range found {
		ar := AlertReport{Kind: a.Kind, Node: a.Node, Cluster: a.Cluster, Diagnosis: a.Diagnosis,
			Subject: a.Subject, FoundInMailHog: true}
		stored := a.Stored.Sub(r.series.start).Seconds()
		ar.StoredS = &stored
		if entered, ok := r.entryOf(a); ok {
			ms := a.Stored.Sub(r.tg.Clock().Real(entered)).Milliseconds()
			ar.LatencyMS = &ms
		}
		out = append(out, ar)
	}
	for _, e := range r.sc.Expect {
		if e.Kind != "alert" {
			continue
		}
		for range e.Count - countMatches(found, e.Alert, e.Node, e.Cluster, e.Diagnosis) {
			out = append(out, AlertReport{Kind: e.Alert, Node: e.Node, Cluster: r.clusterOf(e),
				Diagnosis: e.Diagnosis, FoundInMailHog: false})
		}
	}
	return out
}

func (r *replay) clusterOf(e scenarios.Expectation) string {
	if e.Cluster != "" {
		return e.Cluster
	}
	return r.sc.Topology.Cluster
}

// entryOf finds the stress entry an alert answers, from its key: a stress alert names its
// episode, an advisory the entry that triggered it.
func (r *replay) entryOf(a foundAlert) (time.Time, bool) {
	if a.Kind == scenarios.AlertFrequent {
		i := strings.LastIndexByte(a.Key, ':')
		ns, err := strconv.ParseInt(a.Key[i+1:], 10, 64)
		if i < 0 || err != nil {
			return time.Time{}, false
		}
		return time.Unix(0, ns), true
	}
	for i := range r.sc.Topology.Nodes {
		snap, _ := r.tg.State(i)
		for _, e := range snap.Episodes {
			if e.ID == a.Key {
				return e.Entered, true
			}
		}
	}
	return time.Time{}, false
}

// sinceStart maps a shared-clock time to real seconds since the replay began.
func (r *replay) sinceStart(t time.Time) float64 {
	return r.tg.Clock().Real(t).Sub(r.series.start).Seconds()
}

// check evaluates the scenario's expectations.
func (r *replay) check(rep *Report, found []foundAlert) []ExpectationResult {
	var out []ExpectationResult
	var attempted, tempfailed, lost int
	for _, n := range rep.Nodes {
		attempted += n.Sessions.Attempted
		tempfailed += n.Sessions.Tempfailed
		lost += n.Messages.Lost
	}
	for _, e := range r.sc.Expect {
		res := ExpectationResult{Name: e.String(), Line: e.Line}
		switch e.Kind {
		case "alert":
			got := countMatches(found, e.Alert, e.Node, e.Cluster, e.Diagnosis)
			res.Passed = got == e.Count
			res.Detail = fmt.Sprintf("%d found in MailHog, want exactly %d", got, e.Count)
		case "lost":
			if !rep.DeliveriesChecked {
				// Against running MTAs the next hop is theirs: say so rather than pass silently.
				res.Passed, res.Skipped = true, true
				res.Detail = "not checked: the target's next hop is not the replay's sink"
				break
			}
			res.Passed = lost <= e.Lost
			res.Detail = fmt.Sprintf("%d lost, want at most %d", lost, e.Lost)
		case "tempfailed_max":
			share := 0.0
			if attempted > 0 {
				share = float64(tempfailed) / float64(attempted)
			}
			res.Passed = share <= e.TempfailedMax
			res.Detail = fmt.Sprintf("%.4f of %d sessions answered 421, want at most %.4f", share, attempted, e.TempfailedMax)
		case "peak_active":
			peak, known := -1, false
			for i, n := range rep.Nodes {
				if n.Name == e.Node {
					peak = n.PeakActive
					_, known = r.tg.State(i)
				}
			}
			if !known {
				res.Passed, res.Skipped = true, true
				res.Detail = "not checked: the node's load is unknown (replay against running MTAs needs --nats)"
				break
			}
			res.Passed = peak >= e.PeakActive
			res.Detail = fmt.Sprintf("peak %d active on %s, want at least %d", peak, e.Node, e.PeakActive)
		default:
			res.Detail = "unknown expectation kind " + e.Kind
		}
		out = append(out, res)
	}
	return out
}

func (r *replay) latency() LatencyReport {
	sess := hdrhistogram.New(1, int64(time.Hour/time.Millisecond), 3)
	wait := hdrhistogram.New(1, int64(time.Hour/time.Millisecond), 3)
	for _, res := range r.results {
		_ = sess.RecordValue(max(res.Latency.Milliseconds(), 1))
		if res.Served {
			_ = wait.RecordValue(max(res.Wait.Milliseconds(), 1))
		}
	}
	return LatencyReport{
		SessionP50MS:  sess.ValueAtQuantile(50),
		SessionP99MS:  sess.ValueAtQuantile(99),
		SlotWaitP50MS: wait.ValueAtQuantile(50),
		SlotWaitP99MS: wait.ValueAtQuantile(99),
		SlotWaitMaxMS: wait.Max(),
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
