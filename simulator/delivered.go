package simulator

import (
	"bytes"
	"net/mail"

	"github.com/mtastress/mtastress/testenv"
)

// deliveries tallies what reached the next hop: message id → recipient → copies. Mail without
// the id header (bounces the MTA generated, for example) is not the replay's and is skipped.
func deliveries(msgs []testenv.SinkMessage) map[string]map[string]int {
	out := make(map[string]map[string]int)
	for _, m := range msgs {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			continue
		}
		id := msg.Header.Get(IDHeader)
		if id == "" {
			continue
		}
		if out[id] == nil {
			out[id] = make(map[string]int)
		}
		for _, rcpt := range m.To {
			out[id][rcpt]++
		}
	}
	return out
}
