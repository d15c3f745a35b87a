package scenarios

import (
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Expectation kinds, the values of Expectation.Kind.
const (
	KindAlert         = "alert"
	KindLost          = "lost"
	KindTempfailedMax = "tempfailed_max"
	KindPeakActive    = "peak_active"
)

// Alert kinds, the values of Expectation.Alert.
const (
	AlertStress   = "stress"
	AlertFrequent = "frequent"
)

// diagnoses are the verdicts of a "Frequent MTA Stress" advisory.
var diagnoses = []string{"standalone", "load-balancing", "capacity", "partial"}

// Expectation is one check of the replay's outcome.
type Expectation struct {
	Line      int    // of the item in the file, for reports
	Kind      string // KindAlert, KindLost, KindTempfailedMax or KindPeakActive
	Alert     string // AlertStress or AlertFrequent (KindAlert)
	Node      string // KindAlert (optional) and KindPeakActive (required)
	Cluster   string // KindAlert, optional: as written, "" = the scenario's cluster
	Diagnosis string // KindAlert with AlertFrequent, optional

	Count         int     // KindAlert: exact; without Node summed over nodes
	Lost          int     // KindLost: maximum of lost messages
	TempfailedMax float64 // KindTempfailedMax: maximum share of sessions answered 421
	PeakActive    int     // KindPeakActive: minimum peak of active sessions on Node
}

// String names the expectation in reports, e.g. "alert stress node=edge-1
// count=1".
func (e Expectation) String() string {
	switch e.Kind {
	case KindAlert:
		parts := []string{"alert", e.Alert}
		for _, kv := range [][2]string{
			{"node", e.Node}, {"cluster", e.Cluster}, {"diagnosis", e.Diagnosis},
		} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+"="+kv[1])
			}
		}
		return strings.Join(append(parts, "count="+strconv.Itoa(e.Count)), " ")
	case KindLost:
		return "lost max=" + strconv.Itoa(e.Lost)
	case KindTempfailedMax:
		return "tempfailed max=" + strconv.FormatFloat(e.TempfailedMax, 'g', -1, 64)
	case KindPeakActive:
		return "peak_active node=" + e.Node + " min=" + strconv.Itoa(e.PeakActive)
	}
	return e.Kind
}

// expectKeys are the keys each kind of expectation allows.
var expectKeys = map[string][]string{
	KindAlert:         {"alert", "node", "cluster", "count", "diagnosis"},
	KindLost:          {"lost"},
	KindTempfailedMax: {"tempfailed_max"},
	KindPeakActive:    {"peak_active", "node"},
}

var expectKinds = []string{KindAlert, KindLost, KindTempfailedMax, KindPeakActive}

func (p *parser) expectations(n *yaml.Node, t Topology) []Expectation {
	var out []Expectation
	for _, it := range p.list(n, "expect") {
		out = append(out, p.expectation(it, t))
	}
	return out
}

// expectation reads one item; which of the kind keys it holds decides what
// else it may hold.
func (p *parser) expectation(n *yaml.Node, t Topology) Expectation {
	e := Expectation{Line: 1, Kind: p.expectKind(n)}
	if n != nil && n.Line > 0 {
		e.Line = n.Line
	}
	if p.err != nil {
		return e
	}
	o := p.object(n, "an expectation of "+e.Kind, expectKeys[e.Kind])
	switch e.Kind {
	case KindAlert:
		p.alertExpectation(o, &e, t)
	case KindLost:
		e.Lost = p.whole(o.get("lost"), "lost", 0)
	case KindTempfailedMax:
		e.TempfailedMax = p.share(o.get("tempfailed_max"), "tempfailed_max")
	case KindPeakActive:
		p.peakExpectation(o, &e, t)
	}
	return e
}

// expectKind finds the one kind key of an item.
func (p *parser) expectKind(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.MappingNode {
		p.object(n, "an expectation", nil) // reports what it is instead
		return ""
	}
	var found []string
	for i := 0; i < len(n.Content); i += 2 {
		// A repeated kind key is left to object's duplicate check.
		k := p.deref(n.Content[i])
		if k != nil && slices.Contains(expectKinds, k.Value) && !slices.Contains(found, k.Value) {
			found = append(found, k.Value)
		}
	}
	switch len(found) {
	case 0:
		p.failf(n, "an expectation needs one of %s, e.g. {alert: stress, node: edge-1, count: 1}",
			strings.Join(expectKinds, ", "))
		return ""
	case 1:
		return found[0]
	}
	p.failf(n, "an expectation holds one check, not %s; split it into one item each",
		strings.Join(found, " and "))
	return ""
}

func (p *parser) alertExpectation(o *object, e *Expectation, t Topology) {
	kindNode := o.get("alert")
	e.Alert = p.text(kindNode, "alert")
	p.check(kindNode, e.Alert == AlertStress || e.Alert == AlertFrequent,
		"unknown alert kind %q; use stress or frequent", e.Alert)
	e.Count = p.whole(p.need(o, "count", "count: 1"), "count", 0)
	e.Node = p.expectNode(o.get("node"), t)
	if c := o.get("cluster"); c != nil {
		e.Cluster = p.ident(c, "cluster")
		p.check(c, e.Cluster == t.Cluster,
			"unknown cluster %q; this scenario's cluster is %s", e.Cluster, t.Cluster)
	}
	if d := o.get("diagnosis"); d != nil {
		e.Diagnosis = p.text(d, "diagnosis")
		p.check(d, e.Alert == AlertFrequent,
			"diagnosis applies only to alert: frequent; remove it")
		p.check(d, slices.Contains(diagnoses, e.Diagnosis),
			"unknown diagnosis %q; use one of %s", e.Diagnosis, strings.Join(diagnoses, ", "))
	}
}

// peakExpectation reads {peak_active: N, node: X}. A peak above the node's
// limit can never be seen (active sessions hold slots), so it is refused.
func (p *parser) peakExpectation(o *object, e *Expectation, t Topology) {
	e.PeakActive = p.whole(o.get("peak_active"), "peak_active", 0)
	e.Node = p.expectNode(p.need(o, "node", "node: edge-1"), t)
	if p.err != nil {
		return
	}
	node, _ := findNode(t, e.Node)
	p.check(o.get("peak_active"), e.PeakActive <= node.ProcessLimit,
		"peak_active %d can never be reached: %s's process limit is %d",
		e.PeakActive, e.Node, node.ProcessLimit)
}

// expectNode reads a node name that must be one of the topology's.
func (p *parser) expectNode(n *yaml.Node, t Topology) string {
	name := p.text(n, "node")
	if n == nil || p.err != nil {
		return name
	}
	_, ok := findNode(t, name)
	names := make([]string, len(t.Nodes))
	for i, node := range t.Nodes {
		names[i] = node.Name
	}
	p.check(n, ok, "unknown node %q; the topology has %s", name, strings.Join(names, ", "))
	return name
}

func findNode(t Topology, name string) (Node, bool) {
	i := slices.IndexFunc(t.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return Node{}, false
	}
	return t.Nodes[i], true
}
