package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// keyPrefix names a cluster's record in the KV bucket: one key per cluster, since a diagnosis
// reads every node of the cluster and the CAS covers what it reads.
//
// TODO: a record is rewritten on every sample of every node of its cluster; for clusters of
// many nodes the better design keeps per-node keys for samples and merges them at diagnosis.
const keyPrefix = "cluster."

// record is what the KV bucket holds per cluster. The outbox lives in the same value as the
// state, so deciding an alert and recording the intent to send it is one compare-and-set.
type record struct {
	State  State        `json:"state"`
	Outbox []outboxItem `json:"outbox,omitempty"`
	Sent   []SentAlert  `json:"sent,omitempty"` // the last keepFor, for history
}

// outboxItem is an alert decided and not yet known to be sent. Times are real time: claims and
// retries are about the relay, not about the events.
type outboxItem struct {
	Alert     SendAlert `json:"alert"`
	Attempts  int       `json:"attempts"`
	NextTry   time.Time `json:"next_try"`
	LastError string    `json:"last_error,omitempty"`
	// Claim names the replica sending it now; a claim older than the lease was abandoned.
	Claim     string    `json:"claim,omitempty"`
	ClaimedAt time.Time `json:"claimed_at"`
}

// SentAlert is an alert the relay accepted.
type SentAlert struct {
	Kind      string    `json:"kind"`
	Key       string    `json:"key"`
	Node      string    `json:"node,omitempty"`
	Cluster   string    `json:"cluster"`
	Diagnosis string    `json:"diagnosis,omitempty"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Date      time.Time `json:"date"` // the event time it is about
	Sent      time.Time `json:"sent"` // real time of the relay's acceptance
	Attempts  int       `json:"attempts"`
}

func (r *record) enqueue(as []SendAlert, now time.Time) {
	for _, a := range as {
		r.Outbox = append(r.Outbox, outboxItem{Alert: a, NextTry: now})
	}
}

func (r *record) item(key string) *outboxItem {
	i := slices.IndexFunc(r.Outbox, func(it outboxItem) bool { return it.Alert.Key == key })
	if i < 0 {
		return nil
	}
	return &r.Outbox[i]
}

// ready lists the keys of the items that nobody is sending and whose retry time has come.
func (r *record) ready(now time.Time, lease time.Duration) []string {
	var keys []string
	for _, it := range r.Outbox {
		if !it.NextTry.After(now) && (it.Claim == "" || now.Sub(it.ClaimedAt) > lease) {
			keys = append(keys, it.Alert.Key)
		}
	}
	return keys
}

// markSent moves an item from the outbox to the history, trimmed to keepFor.
func (r *record) markSent(s SentAlert) {
	r.Outbox = slices.DeleteFunc(r.Outbox, func(it outboxItem) bool { return it.Alert.Key == s.Key })
	// Another replica may have sent and recorded it after this one's claim expired.
	if !slices.ContainsFunc(r.Sent, func(x SentAlert) bool { return x.Key == s.Key }) {
		r.Sent = append(r.Sent, s)
	}
	horizon := s.Sent.Add(-keepFor)
	r.Sent = slices.DeleteFunc(r.Sent, func(x SentAlert) bool { return x.Sent.Before(horizon) })
}

func sentAlert(it outboxItem, at time.Time) SentAlert {
	a := it.Alert
	return SentAlert{
		Kind: a.Kind, Key: a.Key, Node: a.Node, Cluster: a.Cluster, Diagnosis: a.Diagnosis,
		Subject: a.Subject, MessageID: a.MessageID, Date: a.Date, Sent: at, Attempts: it.Attempts,
	}
}

// store reads and writes records with compare-and-set.
type store struct {
	kv jetstream.KeyValue
}

// update applies fn to the cluster's record and writes it back if fn reports a change,
// starting over when another writer got there first.
func (s store) update(ctx context.Context, cluster string, fn func(*record) bool) error {
	key := keyPrefix + cluster
	for {
		r, rev, err := s.load(ctx, cluster)
		if err != nil {
			return err
		}
		if !fn(r) {
			return nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("alerts: encode record %s: %w", key, err)
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return fmt.Errorf("alerts: write %s: %w", key, err)
		}
		return nil
	}
}

// load returns the cluster's record and its revision; revision 0 means there is none yet.
func (s store) load(ctx context.Context, cluster string) (*record, uint64, error) {
	e, err := s.kv.Get(ctx, keyPrefix+cluster)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &record{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("alerts: read %s%s: %w", keyPrefix, cluster, err)
	}
	r := &record{}
	if err := json.Unmarshal(e.Value(), r); err != nil {
		// A record this version cannot read is not silently replaced: that would lose the
		// outbox. The operator has to look.
		return nil, 0, fmt.Errorf("alerts: decode %s%s: %w", keyPrefix, cluster, err)
	}
	return r, e.Revision(), nil
}

// clusters lists the clusters that have a record.
func (s store) clusters(ctx context.Context) ([]string, error) {
	l, err := s.kv.ListKeysFiltered(ctx, keyPrefix+">")
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, strings.TrimPrefix(k, keyPrefix))
	}
	return out, nil
}

// History returns the alerts sent in the last 8 days, oldest first, as the bucket records them
// for every replica. `mtastress alerts history` prints it.
func History(ctx context.Context, js jetstream.JetStream, bucket string) ([]SentAlert, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("alerts: bucket %s: %w", bucket, err)
	}
	s := store{kv: kv}
	names, err := s.clusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: list %s: %w", bucket, err)
	}
	var out []SentAlert
	for _, c := range names {
		r, _, err := s.load(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Sent...)
	}
	slices.SortFunc(out, func(a, b SentAlert) int { return a.Sent.Compare(b.Sent) })
	return out, nil
}
