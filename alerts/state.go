package alerts

import (
	"slices"
	"sort"
	"time"

	"github.com/mtastress/mtastress/events"
)

// Week is the rolling window of the frequency rule.
const Week = 7 * 24 * time.Hour

// keepFor is how long state remembers entries, samples and raised alerts: the week plus slack,
// like the MTA_EVENTS stream, so that a late event inside the week still finds its neighbours.
const keepFor = 8 * 24 * time.Hour

// seenWindow is how many applied sequences are remembered per source and stream. A window,
// rather than only the highest, lets two replicas apply a source's events slightly out of order
// without dropping the older one.
const seenWindow = 32

// State is what the rules remember. It is plain data, JSON-encoded into the KV bucket by the
// runtime (one State per cluster) and held in memory by the planner (one for everything).
type State struct {
	// Nodes by "<cluster>/<node>".
	Nodes map[string]*NodeState `json:"nodes,omitempty"`
	// Seen holds the sequences applied, by "<source> <kind>" (kind "stress" or "load"): the
	// two streams are consumed separately, so their orders are independent.
	Seen map[string]*Seen `json:"seen,omitempty"`
	// Raised holds the alert keys already decided, with the event time they refer to.
	Raised map[string]time.Time `json:"raised,omitempty"`
	// Pending advisories wait for their settle window before the diagnosis is made.
	Pending []Pending `json:"pending,omitempty"`
	// Latest is the newest event time applied; the trimming horizon follows it.
	Latest time.Time `json:"latest"`
	// Trimmed is the Latest of the last trim: trimming walks every node, so it runs hourly.
	Trimmed time.Time `json:"trimmed"`
}

// NodeState is one roster entry.
type NodeState struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	Model   string `json:"model"`
	Limit   int    `json:"limit"`
	// LastSample is the event time of the newest load sample; a node with a sample in the
	// week is on its cluster's roster.
	LastSample time.Time `json:"last_sample"`
	// Counter is the node's cumulative sessions-served at LastSample (0: none seen yet).
	Counter uint64 `json:"counter"`
	// Served counts sessions served per UTC day, oldest first, for the shares of the week.
	Served []DayCount `json:"served,omitempty"`
	// Entries into stress, by entry time, oldest first.
	Entries []Entry `json:"entries,omitempty"`
	// LastAdvisory is the trigger time of the last frequent advisory that covered this node.
	LastAdvisory time.Time `json:"last_advisory"`
}

// DayCount is a number of sessions served on one UTC day.
type DayCount struct {
	Day   time.Time `json:"day"`
	Count uint64    `json:"count"`
}

// Entry is one stress episode as the rules know it.
type Entry struct {
	Episode string    `json:"episode"`
	At      time.Time `json:"at"`
	// Peak is the most active plus waiting sessions seen in the episode.
	Peak int `json:"peak"`
}

// Seen remembers the last sequences applied from one source on one stream.
type Seen struct {
	Max    uint64   `json:"max"`
	Recent []uint64 `json:"recent"` // ascending, at most seenWindow
}

// Pending is a frequent advisory waiting for its settle window.
type Pending struct {
	Cluster string    `json:"cluster"`
	Node    string    `json:"node"`
	Trigger time.Time `json:"trigger"` // the entry that made two in a week
	Due     time.Time `json:"due"`
}

func nodeKey(cluster, node string) string { return cluster + "/" + node }

// node returns the roster entry, creating it.
func (st *State) node(cluster, node string) *NodeState {
	if st.Nodes == nil {
		st.Nodes = make(map[string]*NodeState)
	}
	k := nodeKey(cluster, node)
	n := st.Nodes[k]
	if n == nil {
		n = &NodeState{Cluster: cluster, Node: node}
		st.Nodes[k] = n
	}
	return n
}

// clusterNodes returns the nodes of one cluster, sorted by name so output is stable.
func (st *State) clusterNodes(cluster string) []*NodeState {
	var out []*NodeState
	for _, n := range st.Nodes {
		if n.Cluster == cluster {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// seen reports whether seq was applied already, and records it if not.
func (st *State) seen(source, kind string, seq uint64) bool {
	if st.Seen == nil {
		st.Seen = make(map[string]*Seen)
	}
	k := source + " " + kind
	s := st.Seen[k]
	if s == nil {
		s = &Seen{}
		st.Seen[k] = s
	}
	if _, found := slices.BinarySearch(s.Recent, seq); found {
		return true
	}
	// Older than everything the window remembers: it cannot be told from a duplicate, and a
	// redelivery is far likelier than a reorder that deep.
	if len(s.Recent) >= seenWindow && seq < s.Recent[0] {
		return true
	}
	i, _ := slices.BinarySearch(s.Recent, seq)
	s.Recent = slices.Insert(s.Recent, i, seq)
	if len(s.Recent) > seenWindow {
		s.Recent = s.Recent[len(s.Recent)-seenWindow:]
	}
	s.Max = max(s.Max, seq)
	return false
}

// entry returns the index of the entry of episode, or -1.
func (n *NodeState) entry(episode string) int {
	return slices.IndexFunc(n.Entries, func(e Entry) bool { return e.Episode == episode })
}

// addEntry places a new entry by its time and returns its index.
func (n *NodeState) addEntry(e Entry) int {
	i := sort.Search(len(n.Entries), func(i int) bool { return n.Entries[i].At.After(e.At) })
	n.Entries = slices.Insert(n.Entries, i, e)
	return i
}

// entriesIn returns the entries with from < At <= to.
func (n *NodeState) entriesIn(from, to time.Time) []Entry {
	var out []Entry
	for _, e := range n.Entries {
		if e.At.After(from) && !e.At.After(to) {
			out = append(out, e)
		}
	}
	return out
}

// servedIn sums the sessions served on the days that overlap (from, to].
func (n *NodeState) servedIn(from, to time.Time) uint64 {
	var sum uint64
	for _, d := range n.Served {
		if d.Day.Add(24*time.Hour).After(from) && !d.Day.After(to) {
			sum += d.Count
		}
	}
	return sum
}

// addServed counts sessions on the UTC day of at.
func (n *NodeState) addServed(at time.Time, count uint64) {
	if count == 0 {
		return
	}
	day := at.UTC().Truncate(24 * time.Hour)
	if k := len(n.Served); k > 0 && n.Served[k-1].Day.Equal(day) {
		n.Served[k-1].Count += count
		return
	}
	i := sort.Search(len(n.Served), func(i int) bool { return !n.Served[i].Day.Before(day) })
	if i < len(n.Served) && n.Served[i].Day.Equal(day) {
		n.Served[i].Count += count
		return
	}
	n.Served = slices.Insert(n.Served, i, DayCount{Day: day, Count: count})
}

// trim forgets what is older than the horizon, so state stays bounded.
func (n *NodeState) trim(horizon time.Time) {
	n.Entries = slices.DeleteFunc(n.Entries, func(e Entry) bool { return e.At.Before(horizon) })
	n.Served = slices.DeleteFunc(n.Served, func(d DayCount) bool {
		return d.Day.Add(24 * time.Hour).Before(horizon)
	})
}

// trim forgets raised alerts, and nodes silent since before the horizon.
func (st *State) trim(horizon time.Time) {
	for k, at := range st.Raised {
		if at.Before(horizon) {
			delete(st.Raised, k)
		}
	}
	for k, n := range st.Nodes {
		n.trim(horizon)
		if len(n.Entries) == 0 && n.LastSample.Before(horizon) && n.LastAdvisory.Before(horizon) {
			// Its sequences go too: anything it sent before the horizon is stale anyway.
			src := events.Source(n.Cluster, n.Node)
			delete(st.Seen, src+" "+kindStress)
			delete(st.Seen, src+" "+kindLoad)
			delete(st.Nodes, k)
		}
	}
}
