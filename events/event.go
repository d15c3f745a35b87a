// Package events defines the load and stress events an MTA node publishes on NATS JetStream:
// their CloudEvents 1.0 envelope, subjects, streams, a publisher that never blocks mail flow, and
// the decoding and de-duplication a consumer needs.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// CloudEvents 1.0 attributes that every event carries.
const (
	SpecVersion = "1.0"
	ContentType = "application/cloudevents+json"
	dataType    = "application/json"
)

// Event types. The version suffix changes only when a field changes meaning.
const (
	TypeLoadSample    = "io.mtastress.load.sample.v1"
	TypeStressEntered = "io.mtastress.stress.entered.v1"
	TypeStressExited  = "io.mtastress.stress.exited.v1"
)

// Errors a consumer can match with errors.Is.
var (
	ErrMalformed   = errors.New("events: malformed event")
	ErrUnknownType = errors.New("events: unknown event type")
	ErrBadName     = errors.New("events: bad cluster or node name")
)

// seqWidth zero-pads sequences so that they sort as strings.
const seqWidth = 20

// Clock is the time source of a publisher; the simulator's shared clock satisfies it.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Envelope is the structured-mode CloudEvents 1.0 JSON form of an event.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Sequence        string          `json:"sequence"`
	Data            json.RawMessage `json:"data"`
}

// Node names the node an event comes from; every event's data carries it.
type Node struct {
	Node    string `json:"node"`
	Cluster string `json:"cluster"`
	Model   string `json:"model"`
	Limit   int    `json:"limit"`
}

// LoadSample is what a node reports once a second.
type LoadSample struct {
	Node
	Active        int     `json:"active"`
	Waiting       int     `json:"waiting"`
	Stress        bool    `json:"stress"`
	StressPercent float64 `json:"stress_percent"`
	QueueDepth    int     `json:"queue_depth"`
	// PeakDemand is the most active plus waiting sessions seen since the previous sample.
	PeakDemand int `json:"peak_demand"`
	// Episode is the current stress episode's id while in stress.
	Episode string `json:"episode,omitempty"`

	// Cumulative counters since the node started.
	SessionsServed     uint64 `json:"sessions_served"`
	SessionsTempfailed uint64 `json:"sessions_tempfailed"`
	MessagesAccepted   uint64 `json:"messages_accepted"`
	MessagesRejected   uint64 `json:"messages_rejected"`
}

// StressTransition is an entry into or an exit from stress.
type StressTransition struct {
	Node
	Episode string     `json:"episode"`
	Entered time.Time  `json:"entered"`
	Exited  *time.Time `json:"exited,omitempty"`
	// PeakDemand is the most active plus waiting sessions seen in the episode so far.
	PeakDemand int `json:"peak_demand"`
}

// Event is a decoded envelope with its data.
type Event struct {
	Envelope
	Seq        uint64
	Sample     *LoadSample       // set for TypeLoadSample
	Transition *StressTransition // set for the stress types
}

// Subjects of one node.
func LoadSubject(cluster, node string) string   { return "mta." + cluster + "." + node + ".load" }
func StressSubject(cluster, node string) string { return "mta." + cluster + "." + node + ".stress" }

// Source is the CloudEvents source of one node.
func Source(cluster, node string) string { return "/mta/" + cluster + "/" + node }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidName reports whether s may be a cluster or node name: it becomes a subject token, so
// dots, wildcards and spaces are refused.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %q (use letters, digits, '-' and '_' only)", ErrBadName, s)
	}
	return nil
}

// EpisodeID names a stress episode: <cluster>.<node>.<entered in Unix nanoseconds>.
func EpisodeID(cluster, node string, entered time.Time) string {
	return cluster + "." + node + "." + strconv.FormatInt(entered.UnixNano(), 10)
}

// FormatSeq renders a sequence as the zero-padded string of the envelope.
func FormatSeq(seq uint64) string {
	return fmt.Sprintf("%0*d", seqWidth, seq)
}

// eventID is unique per source and sequence, so a retried publish carries the same id.
func eventID(cluster, node string, seq uint64) string {
	return cluster + "." + node + "." + FormatSeq(seq)
}

// Encode builds the envelope of one event. data must be a *LoadSample or *StressTransition.
func Encode(typ string, seq uint64, at time.Time, n Node, data any) (*Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &Envelope{
		SpecVersion:     SpecVersion,
		ID:              eventID(n.Cluster, n.Node, seq),
		Source:          Source(n.Cluster, n.Node),
		Type:            typ,
		Time:            at.UTC(),
		DataContentType: dataType,
		Sequence:        FormatSeq(seq),
		Data:            raw,
	}, nil
}

// Decode parses and checks one event. A malformed event or an unknown type is an error the
// consumer logs and terminates; it never panics.
func Decode(b []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev.Envelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := ev.check(); err != nil {
		return nil, err
	}
	switch ev.Type {
	case TypeLoadSample:
		ev.Sample = new(LoadSample)
		if err := strictData(ev.Data, ev.Sample); err != nil {
			return nil, err
		}
		return &ev, ev.checkNode(ev.Sample.Node)
	case TypeStressEntered, TypeStressExited:
		ev.Transition = new(StressTransition)
		if err := strictData(ev.Data, ev.Transition); err != nil {
			return nil, err
		}
		if ev.Transition.Episode == "" {
			return nil, fmt.Errorf("%w: %s without an episode", ErrMalformed, ev.Type)
		}
		if ev.Type == TypeStressExited && ev.Transition.Exited == nil {
			return nil, fmt.Errorf("%w: exit without an exit time", ErrMalformed)
		}
		return &ev, ev.checkNode(ev.Transition.Node)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, ev.Type)
	}
}

func (ev *Event) check() error {
	switch {
	case ev.SpecVersion != SpecVersion:
		return fmt.Errorf("%w: specversion %q, want %q", ErrMalformed, ev.SpecVersion, SpecVersion)
	case ev.ID == "" || ev.Source == "" || ev.Type == "":
		return fmt.Errorf("%w: id, source and type are required", ErrMalformed)
	case ev.Time.IsZero():
		return fmt.Errorf("%w: no time", ErrMalformed)
	case len(ev.Data) == 0:
		return fmt.Errorf("%w: no data", ErrMalformed)
	}
	seq, err := strconv.ParseUint(ev.Sequence, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: sequence %q", ErrMalformed, ev.Sequence)
	}
	ev.Seq = seq
	return nil
}

// checkNode holds the data's node to the envelope's source, so a consumer can trust either.
func (ev *Event) checkNode(n Node) error {
	if ValidName(n.Cluster) != nil || ValidName(n.Node) != nil {
		return fmt.Errorf("%w: node %q cluster %q", ErrMalformed, n.Node, n.Cluster)
	}
	if ev.Source != Source(n.Cluster, n.Node) {
		return fmt.Errorf("%w: source %q does not match node %s/%s", ErrMalformed, ev.Source, n.Cluster, n.Node)
	}
	if n.Limit <= 0 {
		return fmt.Errorf("%w: limit %d", ErrMalformed, n.Limit)
	}
	return nil
}

// strictData decodes an event's data. Unknown fields are allowed: a v1 consumer must keep
// working when a producer adds one.
func strictData(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: data: %v", ErrMalformed, err)
	}
	return nil
}
