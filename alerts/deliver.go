package alerts

import (
	"context"
	"math/rand/v2"
	"time"
)

// rescanEvery is how often, in ticks, the bucket is listed for clusters this replica has not
// seen events of: another replica may have crashed with alerts in their outboxes.
const rescanEvery = 30

// bookkeepingTimeout bounds the KV writes after a send. They use their own context so that a
// mail the relay accepted is recorded even while shutting down.
const bookkeepingTimeout = 10 * time.Second

// deliverLoop releases settled advisories and sends the outboxes, on every tick and whenever an
// event decided an alert.
func (s *Service) deliverLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	for n := 0; ; n++ {
		if n%rescanEvery == 0 {
			s.rescan(ctx)
		}
		for _, c := range s.clusters() {
			if ctx.Err() != nil {
				return
			}
			s.sweep(ctx, c)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		}
	}
}

func (s *Service) rescan(ctx context.Context) {
	names, err := s.store.clusters(ctx)
	if err != nil {
		s.log.Warn("bucket not listed", "err", err)
		return
	}
	for _, c := range names {
		s.noteCluster(c)
	}
}

func (s *Service) clusters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.known))
	for c := range s.known {
		out = append(out, c)
	}
	return out
}

// sweep releases the cluster's due advisories into its outbox, then sends what is ready.
func (s *Service) sweep(ctx context.Context, cluster string) {
	r, _, err := s.store.load(ctx, cluster)
	if err != nil {
		s.log.Warn("record not read", "cluster", cluster, "err", err)
		return
	}
	l := s.live()
	if next, ok := NextDue(r.State); ok && !next.After(s.cfg.Clock.Now()) {
		var released []SendAlert
		err := s.store.update(ctx, cluster, func(r *record) bool {
			before := len(r.State.Pending)
			r.State, released = Due(r.State, s.cfg.Clock.Now(), l.rules)
			r.enqueue(released, time.Now())
			return len(r.State.Pending) != before
		})
		if err != nil {
			s.log.Warn("settled advisories not released", "cluster", cluster, "err", err)
			return
		}
		for _, a := range released {
			s.log.Info("alert decided", "kind", a.Kind, "key", a.Key, "cluster", a.Cluster,
				"diagnosis", a.Diagnosis)
		}
		if r, _, err = s.store.load(ctx, cluster); err != nil {
			return
		}
	}
	for _, key := range r.ready(time.Now(), l.lease) {
		if ctx.Err() != nil {
			return
		}
		s.deliver(ctx, cluster, key)
	}
}

// deliver claims one outbox item with compare-and-set, so that of two replicas one sends it,
// sends it, and records the result. It uses the settings in force when it begins throughout:
// a reload meanwhile changes the next delivery, not this one.
func (s *Service) deliver(ctx context.Context, cluster, key string) {
	l := s.live()
	var it outboxItem
	claimed := false
	err := s.store.update(ctx, cluster, func(r *record) bool {
		p := r.item(key)
		now := time.Now()
		claimed = p != nil && !p.NextTry.After(now) && (p.Claim == "" || now.Sub(p.ClaimedAt) > l.lease)
		if claimed {
			p.Claim, p.ClaimedAt = s.cfg.Replica, now
			p.Attempts++
			it = *p
		}
		return claimed
	})
	if err != nil || !claimed {
		return
	}

	sendErr := l.mailer.Send(ctx, it.Alert)

	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if sendErr == nil {
		s.recordSent(bctx, cluster, it)
		return
	}
	s.recordFailure(bctx, l, cluster, it, sendErr)
}

func (s *Service) recordSent(ctx context.Context, cluster string, it outboxItem) {
	sent := sentAlert(it, time.Now())
	s.mu.Lock()
	s.sent = append(s.sent, sent)
	s.mu.Unlock()
	s.log.Info("alert sent", "kind", sent.Kind, "key", sent.Key, "cluster", sent.Cluster,
		"node", sent.Node, "diagnosis", sent.Diagnosis, "subject", sent.Subject,
		"attempts", sent.Attempts, "message_id", sent.MessageID)
	err := s.store.update(ctx, cluster, func(r *record) bool {
		r.markSent(sent)
		return true
	})
	if err != nil {
		// The claim expires and another attempt sends it again, with the same Message-ID:
		// the one duplicate DESIGN.md allows.
		s.log.Error("sent alert not recorded; it may be sent twice", "key", sent.Key, "err", err)
	}
}

// recordFailure releases the claim and schedules the next attempt. A permanent rejection is
// retried too, at the slowest pace: an alert is never dropped silently.
//
// TODO: after a day of permanent failures, move the alert to a dead-letter list that
// `mtastress alerts history` shows, instead of retrying forever.
func (s *Service) recordFailure(ctx context.Context, l *live, cluster string, it outboxItem,
	sendErr error,
) {
	wait := l.backoff(it.Attempts)
	if Permanent(sendErr) {
		wait = l.cfg.RetryMax
	}
	s.log.Warn("alert not sent, will retry", "key", it.Alert.Key, "attempt", it.Attempts,
		"retry_in", wait, "permanent", Permanent(sendErr), "err", sendErr)
	err := s.store.update(ctx, cluster, func(r *record) bool {
		p := r.item(it.Alert.Key)
		if p == nil || p.Claim != s.cfg.Replica {
			return false
		}
		p.Claim, p.LastError = "", sendErr.Error()
		p.NextTry = time.Now().Add(wait)
		return true
	})
	if err != nil {
		s.log.Warn("claim not released; it expires", "key", it.Alert.Key, "err", err)
	}
}

// backoff doubles from RetryMin to RetryMax, with jitter so replicas and alerts spread out.
func (l *live) backoff(attempts int) time.Duration {
	d := l.cfg.RetryMin
	for i := 1; i < attempts && d < l.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, l.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}
