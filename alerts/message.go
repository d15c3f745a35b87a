package alerts

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"html"
	"mime/quotedprintable"
	"strings"
	"time"
)

// doc is an email body in a form that renders to both the text and the HTML part, so the two
// never say different things.
type doc struct {
	lead     string
	facts    [][2]string
	sections []section
}

type section struct {
	heading string
	paras   []string
	bullets []string
}

// stressAlert renders the "MTA Stress" email of one episode.
func stressAlert(n *NodeState, e Entry) SendAlert {
	d := doc{
		lead: fmt.Sprintf("Node %s in cluster %s reached its process limit and entered stress at %s.",
			n.Node, n.Cluster, stamp(e.At)),
		facts: [][2]string{
			{"Node", n.Node},
			{"Cluster", n.Cluster},
			{"Model", n.Model},
			{"Process limit", fmt.Sprintf("%d concurrent SMTP sessions", n.Limit)},
			{"Entered stress", stamp(e.At)},
			{"Episode", e.Episode},
		},
		sections: []section{
			{heading: "What it means", paras: []string{
				"Every SMTP session slot of the node was busy. New clients wait for a free slot; " +
					"those that wait too long are told to retry later (421 4.3.2), which is a " +
					"temporary answer: well-behaved senders come back, so their mail is delayed, " +
					"not lost.",
				"Sessions that start while it is in stress run with stress settings: shorter " +
					"timeouts and fewer errors allowed, so that slow or abusive clients give " +
					"their slots back sooner.",
			}},
			{heading: "Mail is still flowing", paras: []string{
				"The node keeps receiving, queueing and delivering mail. Nothing is dropped. " +
					"It returns to normal by itself once the load falls; you will not get an " +
					"email when it does.",
			}},
			{heading: "What to do", bullets: []string{
				"Look at where the node's connections come from: a spam run, a slow-drip " +
					"(slowloris) client or a directory harvest shows as many sessions from few " +
					"addresses.",
				"If the traffic is legitimate, the node needs a bigger model or part of its load " +
					"moved to other nodes.",
				"If this node enters stress again within 7 days you will get a " +
					"\"Frequent MTA Stress\" advisory with a diagnosis.",
			}},
		},
	}
	return render(SendAlert{
		Kind:    KindStress,
		Key:     e.Episode,
		Node:    n.Node,
		Cluster: n.Cluster,
		Date:    e.At,
		Subject: fmt.Sprintf("MTA Stress: %s (%s) reached its process limit", n.Node, n.Cluster),
	}, d)
}

// frequentAlert renders a "Frequent MTA Stress" advisory.
func frequentAlert(a advisory, key string) SendAlert {
	d := doc{facts: [][2]string{
		{"Cluster", a.Cluster},
		{"Diagnosis", a.Diagnosis},
		{"Week", stamp(a.From) + " to " + stamp(a.Trigger)},
	}}
	if a.Node != "" {
		d.facts = append([][2]string{{"Node", a.Node}}, d.facts...)
	}
	d.lead, d.sections = diagnosisText(a)
	d.sections = append(d.sections, evidenceSection(a))
	return render(SendAlert{
		Kind:      KindFrequent,
		Key:       key,
		Node:      a.Node,
		Cluster:   a.Cluster,
		Diagnosis: a.Diagnosis,
		Date:      a.Trigger,
		Subject:   frequentSubject(a),
	}, d)
}

func frequentSubject(a advisory) string {
	switch a.Diagnosis {
	case DiagCapacity:
		return fmt.Sprintf("Frequent MTA Stress: cluster %s lacks capacity, every node entered stress",
			a.Cluster)
	case DiagPartial:
		return fmt.Sprintf("Frequent MTA Stress: cluster %s, %d of %d nodes entered stress",
			a.Cluster, stressedCount(a), len(a.Roster))
	case DiagLoadBalancing:
		return fmt.Sprintf("Frequent MTA Stress: %s (%s) alone in stress, check load balancing",
			a.Node, a.Cluster)
	default:
		return fmt.Sprintf("Frequent MTA Stress: %s (%s) entered stress %d times in 7 days",
			a.Node, a.Cluster, len(a.find(a.Node).Entries))
	}
}

// diagnosisText says what the verdict means and what to do about it.
func diagnosisText(a advisory) (string, []section) {
	node := a.find(a.Node)
	switch a.Diagnosis {
	case DiagStandalone:
		return fmt.Sprintf("Node %s, the only node of cluster %s, entered stress %d times in 7 days. "+
				"Stress that keeps coming back means the node is too small for its traffic.",
				a.Node, a.Cluster, len(node.Entries)),
			[]section{{heading: "What to do", bullets: []string{
				upgradeAdvice(node),
				"Or move to a load-balanced deployment of two or more nodes.",
			}}}
	case DiagLoadBalancing:
		return fmt.Sprintf("Node %s entered stress %d times in 7 days while the other %d nodes of "+
				"cluster %s did not enter stress at all. The cluster has room; the load balancer "+
				"sends this node more than its share.",
				a.Node, len(node.Entries), len(a.Roster)-1, a.Cluster),
			[]section{{heading: "What to do", bullets: []string{
				"Check the load balancer's weights and health checks for " + a.Node +
					", and compare the shares of sessions below.",
				"If the imbalance is intended, " + lowerFirst(upgradeAdvice(node)),
			}}}
	case DiagCapacity:
		return fmt.Sprintf("Every node of cluster %s entered stress in the last 7 days, and %s "+
				"entered it twice. The load is spread, but the cluster as a whole is too small.",
				a.Cluster, triggerNode(a)),
			[]section{{heading: "What to do", bullets: capacityAdvices(a.Capacity)}}
	default:
		return fmt.Sprintf("%d of the %d nodes of cluster %s entered stress in the last 7 days, "+
				"one of them twice. The cluster is close to its capacity.",
				stressedCount(a), len(a.Roster), a.Cluster),
			[]section{{heading: "What to do", bullets: append([]string{
				"Check whether the load balancer can send more to the nodes that stayed out of " +
					"stress (see the shares below).",
			}, capacityAdvices(a.Capacity)...)}}
	}
}

// triggerNode names the node whose second entry made the verdict; only a cluster-wide
// advisory needs it, as its Node is empty.
func triggerNode(a advisory) string {
	for _, e := range a.Roster {
		for _, en := range e.Entries {
			if en.At.Equal(a.Trigger) {
				return e.Node
			}
		}
	}
	return "one node"
}

func upgradeAdvice(e nodeEvidence) string {
	if e.HasNext {
		return fmt.Sprintf("Upgrade %s from %s (limit %d) to %s (limit %d), which covers the peak "+
			"demand of %d sessions seen.",
			e.Node, e.Model, e.Limit, e.Next.Name, e.Next.ProcessLimit, e.Peak)
	}
	return fmt.Sprintf("No model in the catalog is bigger than %s for a peak demand of %d sessions; "+
		"spread the load over more nodes.", e.Model, e.Peak)
}

func capacityAdvices(c capacityAdvice) []string {
	if c.Limit == 0 {
		return []string{"Add nodes or move to bigger models."}
	}
	out := []string{fmt.Sprintf("Add nodes: about %d nodes of %s (limit %d) would cover the "+
		"%d sessions the stressed nodes peaked at together.", c.Nodes, c.Model, c.Limit, c.Demand)}
	if c.HasBigger {
		out = append(out, fmt.Sprintf("Or move every node to %s (limit %d).",
			c.Bigger.Name, c.Bigger.ProcessLimit))
	}
	return out
}

// evidenceSection lists each roster node's entries, peak and share of the cluster's sessions.
func evidenceSection(a advisory) section {
	s := section{heading: "Evidence (last 7 days)"}
	for _, e := range a.Roster {
		share := "no sessions counted"
		if e.Share >= 0 {
			share = fmt.Sprintf("%.1f%% of the cluster's sessions (%d)", 100*e.Share, e.Served)
		}
		line := fmt.Sprintf("%s, %s (limit %d): %s; ", e.Node, orUnknown(e.Model), e.Limit, share)
		if len(e.Entries) == 0 {
			line += "no entry into stress"
		} else {
			times := make([]string, len(e.Entries))
			for i, en := range e.Entries {
				times[i] = stamp(en.At)
			}
			line += fmt.Sprintf("entered stress at %s; peak demand %d sessions",
				strings.Join(times, ", "), e.Peak)
		}
		s.bullets = append(s.bullets, line)
	}
	return s
}

func (a advisory) find(node string) nodeEvidence {
	for _, e := range a.Roster {
		if e.Node == node {
			return e
		}
	}
	return nodeEvidence{Node: node}
}

func stressedCount(a advisory) int {
	n := 0
	for _, e := range a.Roster {
		if len(e.Entries) > 0 {
			n++
		}
	}
	return n
}

func orUnknown(s string) string {
	if s == "" {
		return "model unknown"
	}
	return s
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// stamp formats an event time as operators read it in every message: UTC, RFC 3339.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// render fills in the bodies and the Message-ID.
func render(a SendAlert, d doc) SendAlert {
	a.Text = d.text()
	a.HTML = d.html(a.Subject)
	a.MessageID = messageID(a.Key)
	return a
}

func (d doc) text() string {
	var b strings.Builder
	b.WriteString(wrap(d.lead, "", 72) + "\n\n")
	for _, f := range d.facts {
		fmt.Fprintf(&b, "  %-15s %s\n", f[0]+":", f[1])
	}
	for _, s := range d.sections {
		b.WriteString("\n" + s.heading + "\n")
		for i, p := range s.paras {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(wrap(p, "", 72) + "\n")
		}
		for _, l := range s.bullets {
			b.WriteString(wrap(l, "  - ", 72) + "\n")
		}
	}
	b.WriteString("\n-- \nmtastress alert service\n")
	return b.String()
}

func (d doc) html(title string) string {
	esc := html.EscapeString
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + esc(title) +
		"</title></head>\n<body>\n<p>" + esc(d.lead) + "</p>\n<table>\n")
	for _, f := range d.facts {
		b.WriteString("<tr><th align=\"left\">" + esc(f[0]) + "</th><td>" + esc(f[1]) + "</td></tr>\n")
	}
	b.WriteString("</table>\n")
	for _, s := range d.sections {
		b.WriteString("<h3>" + esc(s.heading) + "</h3>\n")
		for _, p := range s.paras {
			b.WriteString("<p>" + esc(p) + "</p>\n")
		}
		if len(s.bullets) > 0 {
			b.WriteString("<ul>\n")
			for _, l := range s.bullets {
				b.WriteString("<li>" + esc(l) + "</li>\n")
			}
			b.WriteString("</ul>\n")
		}
	}
	b.WriteString("<p><small>mtastress alert service</small></p>\n</body></html>\n")
	return b.String()
}

// wrap breaks a paragraph at spaces, the first line prefixed and the rest indented to match.
func wrap(s, prefix string, width int) string {
	indent := strings.Repeat(" ", len(prefix))
	var b strings.Builder
	line, empty := prefix, true
	for _, w := range strings.Fields(s) {
		if !empty && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line, empty = line+w, false
	}
	b.WriteString(line)
	return b.String()
}

// messageID derives the Message-ID from the alert's key, so a resend after a crash carries the
// same one and a mail client shows it once. Keys hold ':' (not allowed in a msg-id, RFC 5322
// section 3.6.4); cluster and node names hold no '.', so mapping ':' to '.' keeps ids distinct.
func messageID(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r == ':':
			b.WriteByte('.')
		case r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune(".-_*+=", r)):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	id := strings.Trim(b.String(), ".")
	for strings.Contains(id, "..") {
		id = strings.ReplaceAll(id, "..", ".")
	}
	return "<" + id + "@mtastress>"
}

// Message builds the RFC 5322 message: multipart/alternative with the text part first, as
// RFC 2046 section 5.1.4 wants the plainest first. The boundary is derived from the key, so
// the same alert always gives the same bytes.
func (a SendAlert) Message(from string, to []string) []byte {
	h := fnv.New64a()
	h.Write([]byte(a.Key))
	// "=_" never occurs in quoted-printable output, so the boundary cannot clash with a body.
	boundary := fmt.Sprintf("=_mtastress_%016x", h.Sum64())

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from)
	header("To", strings.Join(to, ", "))
	header("Subject", asciiOnly(a.Subject))
	header("Date", a.Date.UTC().Format(time.RFC1123Z))
	header("Message-ID", a.MessageID)
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies to alerts
	header("X-Mtastress-Kind", a.Kind)
	header("X-Mtastress-Key", a.Key)
	header("X-Mtastress-Cluster", a.Cluster)
	if a.Node != "" {
		header("X-Mtastress-Node", a.Node)
	}
	if a.Diagnosis != "" {
		header("X-Mtastress-Diagnosis", a.Diagnosis)
	}
	header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	part(&b, boundary, "text/plain", a.Text)
	part(&b, boundary, "text/html", a.HTML)
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

func part(b *bytes.Buffer, boundary, typ, body string) {
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString("Content-Type: " + typ + "; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	w.Close()
	b.WriteString("\r\n")
}

// asciiOnly keeps a subject plain ASCII: MailHog does not decode encoded words, and inbox checks
// match the raw header.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
