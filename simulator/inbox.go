package simulator

import (
	"context"
	"strings"
	"time"

	"github.com/mtastress/mtastress/testenv"
)

// Subject prefixes of the two alert kinds. A check matches the prefix, not a substring:
// "Frequent MTA Stress:" contains "MTA Stress:".
const (
	StressPrefix   = "MTA Stress:"
	FrequentPrefix = "Frequent MTA Stress:"
)

// Headers the alert service sets so that a check need not parse subjects.
const (
	hdrNode      = "X-Mtastress-Node"
	hdrCluster   = "X-Mtastress-Cluster"
	hdrDiagnosis = "X-Mtastress-Diagnosis"
	// hdrKey is the alert's key: the episode id of a stress alert, and for an advisory
	// "frequent:<cluster>:<node|*>:<entry in Unix nanoseconds>".
	hdrKey = "X-Mtastress-Key"
)

// foundAlert is an alert email found in MailHog.
type foundAlert struct {
	Kind, Node, Cluster, Diagnosis, Key, Subject string
	Stored                                       time.Time // MailHog's receipt, real time
}

// classify reads an email as an alert, or returns false for anything else.
func classify(m testenv.MailHogMessage) (foundAlert, bool) {
	a := foundAlert{Subject: m.Subject, Stored: m.Created}
	switch {
	case strings.HasPrefix(m.Subject, FrequentPrefix):
		a.Kind = "frequent"
	case strings.HasPrefix(m.Subject, StressPrefix):
		a.Kind = "stress"
	default:
		return a, false
	}
	a.Node = header(m, hdrNode)
	a.Cluster = header(m, hdrCluster)
	a.Diagnosis = header(m, hdrDiagnosis)
	a.Key = header(m, hdrKey)
	return a, true
}

func header(m testenv.MailHogMessage, name string) string {
	for k, v := range m.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
	}
	return ""
}

// findAlerts polls MailHog until every expected alert is there and the inbox has stayed the same
// for alertSettle, or until alertWait has passed.
func (r *replay) findAlerts(ctx context.Context) ([]foundAlert, error) {
	deadline := time.Now().Add(alertWait)
	var last []foundAlert
	stableSince := time.Now()
	for {
		msgs, err := r.tg.Inbox(ctx)
		if err != nil {
			return nil, err
		}
		var found []foundAlert
		for _, m := range msgs {
			if a, ok := classify(m); ok {
				found = append(found, a)
			}
		}
		if len(found) != len(last) {
			stableSince = time.Now()
		}
		last = found
		if r.alertsSatisfied(found) && time.Since(stableSince) >= alertSettle {
			return found, nil
		}
		if time.Now().After(deadline) {
			return found, nil
		}
		if err := sleepUntil(ctx, time.Now().Add(250*time.Millisecond)); err != nil {
			return nil, err
		}
	}
}

// alertsSatisfied reports whether every alert expectation with a count above zero has at least
// that many matches, so the search can stop waiting.
func (r *replay) alertsSatisfied(found []foundAlert) bool {
	for _, e := range r.sc.Expect {
		if e.Kind != "alert" {
			continue
		}
		if countMatches(found, e.Alert, e.Node, e.Cluster, e.Diagnosis) < e.Count {
			return false
		}
	}
	return true
}

func countMatches(found []foundAlert, kind, node, cluster, diagnosis string) int {
	n := 0
	for _, a := range found {
		if matches(a, kind, node, cluster, diagnosis) {
			n++
		}
	}
	return n
}

func matches(a foundAlert, kind, node, cluster, diagnosis string) bool {
	return a.Kind == kind &&
		(node == "" || a.Node == node) &&
		(cluster == "" || a.Cluster == cluster) &&
		(diagnosis == "" || a.Diagnosis == diagnosis)
}
