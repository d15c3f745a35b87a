package mta

import (
	"context"
	"log/slog"
	"time"
)

// The mail log: one line per message event, with fixed keys, so that an operator can follow a
// message from queued to delivered or bounced. Message bodies and AUTH data are never logged.
//
// Keys: event (queued, delivered, deferred, bounced, rejected), queue_id, from, to, client,
// session; and by event: code, reply, relay, size, retry_at, dsn.

// mailQueued logs a message on disk; ss is nil for a bounce, which no client sent.
func (s *Server) mailQueued(ss *session, env envelope, size int) {
	session := ""
	if ss != nil {
		s.messagesAccepted.Add(1)
		s.metrics.accepted.Inc()
		session = ss.conn.id
	}
	s.mailLog.Info("mail", "event", "queued", "queue_id", env.ID, "from", env.From, "to", env.To,
		"client", env.Client, "session", session, "size", size)
}

func (s *Server) mailRejected(ss *session, from, to string, code int, reply string) {
	s.messagesRejected.Add(1)
	s.metrics.rejectedCode(code)
	s.mailLog.Info("mail", "event", "rejected", "queue_id", "", "from", from, "to", to,
		"client", ss.conn.ip.String(), "session", ss.conn.id, "code", code, "reply", reply)
}

func (s *Server) mailDelivered(q *queued, r rcptResult) {
	s.metrics.deliveries.WithLabelValues("delivered", codeLabel(r.code)).Inc()
	s.metrics.deliveryLatency.Observe(time.Since(q.env.Received).Seconds())
	s.mailLog.Info("mail", "event", "delivered", "queue_id", q.env.ID, "from", q.env.From, "to", q.env.To[r.idx],
		"client", q.env.Client, "relay", r.hop, "code", r.code, "reply", r.text, "tls", r.tls)
}

// mailDeferred logs a recipient kept for retry. A deferral this node caused (the spool could
// not be read) is logged at error level: it is no next hop's ordinary 4xx.
func (s *Server) mailDeferred(q *queued, r rcptResult, retry time.Time) {
	s.metrics.deliveries.WithLabelValues("deferred", codeLabel(r.code)).Inc()
	level := slog.LevelInfo
	if r.local {
		level = slog.LevelError
	}
	s.mailLog.Log(context.Background(), level, "mail", "event", "deferred", "queue_id", q.env.ID, "from", q.env.From,
		"to", q.env.To[r.idx], "client", q.env.Client, "relay", r.hop, "code", r.code, "reply", r.text,
		"local", r.local, "retry_at", retry)
}

// mailBounced logs a failed recipient; dsn names the bounce queued for it, "" when none was
// (null sender).
func (s *Server) mailBounced(q *queued, r rcptResult, dsn string) {
	s.metrics.deliveries.WithLabelValues("bounced", codeLabel(r.code)).Inc()
	s.mailLog.Info("mail", "event", "bounced", "queue_id", q.env.ID, "from", q.env.From, "to", q.env.To[r.idx],
		"client", q.env.Client, "relay", r.hop, "code", r.code, "reply", r.text, "expired", r.expired, "dsn", dsn)
}

func codeLabel(code int) string {
	if code == 0 {
		return "none"
	}
	return itoa(code)
}
