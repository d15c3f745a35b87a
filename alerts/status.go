package alerts

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/micro"
)

// StatusSubject is where the NATS micro endpoint "mtastress-alerts" answers status requests.
// Replicas share a queue group, so one of them answers, with the bucket's view of every cluster.
const StatusSubject = "mtastress.alerts.status"

var errNotRunning = errors.New("alerts: service not running")

// statusTimeout bounds the KV reads of one status answer.
const statusTimeout = 5 * time.Second

// Status is the answer of the status endpoint.
type Status struct {
	Replica  string          `json:"replica"`
	Started  time.Time       `json:"started"`
	SentHere int             `json:"sent_by_replica"`
	Clusters []ClusterStatus `json:"clusters"`
}

// ClusterStatus is one cluster's record in the bucket.
type ClusterStatus struct {
	Cluster string `json:"cluster"`
	Nodes   int    `json:"nodes"`
	Pending int    `json:"pending_advisories"` // waiting for their settle window
	Outbox  int    `json:"outbox"`             // decided, not yet accepted by the relay
	Sent    int    `json:"sent"`               // in the last 8 days
	// LastError is the relay's last refusal of an alert still in the outbox.
	LastError string `json:"last_error,omitempty"`
}

// Status reads every cluster's record.
func (s *Service) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	st := Status{Replica: s.cfg.Replica, Started: s.started, SentHere: len(s.sent)}
	store := s.store
	s.mu.Unlock()
	if store.kv == nil {
		return st, errNotRunning
	}
	names, err := store.clusters(ctx)
	if err != nil {
		return st, err
	}
	slices.Sort(names)
	for _, c := range names {
		r, _, err := store.load(ctx, c)
		if err != nil {
			return st, err
		}
		cs := ClusterStatus{Cluster: c, Nodes: len(r.State.Nodes), Pending: len(r.State.Pending),
			Outbox: len(r.Outbox), Sent: len(r.Sent)}
		for _, it := range r.Outbox {
			if it.LastError != "" {
				cs.LastError = it.LastError
			}
		}
		st.Clusters = append(st.Clusters, cs)
	}
	return st, nil
}

// serveStatus registers the micro endpoint and returns how to stop it. Status is a convenience:
// a failure is logged and the service runs on without it.
func (s *Service) serveStatus() func() {
	svc, err := micro.AddService(s.cfg.JS.Conn(), micro.Config{
		Name:        "mtastress-alerts",
		Version:     "1.0.0",
		Description: "mtastress alert service: episodes, advisories and outboxes",
		Endpoint: &micro.EndpointConfig{
			Subject: StatusSubject,
			Handler: micro.HandlerFunc(s.answerStatus),
		},
	})
	if err != nil {
		s.log.Warn("status endpoint not served", "subject", StatusSubject, "err", err)
		return func() {}
	}
	return func() { svc.Stop() }
}

func (s *Service) answerStatus(req micro.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st, err := s.Status(ctx)
	if err != nil {
		req.Error("500", err.Error(), nil)
		return
	}
	req.RespondJSON(st)
}
