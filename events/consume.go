package events

import (
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// DecodeMsg decodes a JetStream message into an event for a consumer. A message that is not a
// valid event of a known type and version is logged with where it sits on the stream, so an
// operator can look at it (nats stream get STREAM SEQ), and terminated: redelivering it would
// fail the same way forever. ok is false then, and the consumer goes on with the next one.
func DecodeMsg(msg jetstream.Msg, log *slog.Logger) (ev *Event, ok bool) {
	ev, err := Decode(msg.Data())
	if err == nil {
		return ev, true
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attrs := []any{"subject", msg.Subject(), "msg_id", msg.Headers().Get(jetstream.MsgIDHeader), "err", err}
	if md, mdErr := msg.Metadata(); mdErr == nil {
		attrs = append(attrs, "stream", md.Stream, "stream_seq", md.Sequence.Stream)
	}
	what := "malformed event terminated"
	if errors.Is(err, ErrUnknownType) {
		what = "event of an unknown type or version terminated: is its producer newer than this consumer?"
	}
	log.Error(what, attrs...)
	if err := msg.Term(); err != nil {
		log.Warn("terminating the event failed; it will come again", "err", err)
	}
	return nil, false
}
