package simulator

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

// TestReplaySpamBurstEndToEnd runs the built-in spam-burst through real NATS, MTA, alert
// service and MailHog, and checks what an operator would: one stress email, nothing lost,
// nothing sent on exit, the node really reached its limit.
func TestReplaySpamBurstEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end replay takes about 40 s")
	}
	cat := scenarios.DefaultCatalog()
	sc, err := scenarios.Builtin("spam-burst", cat)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := StartStack(ctx, sc, StackOptions{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	rep, err := Replay(ctx, sc, st, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())

	if !rep.Passed {
		t.Errorf("report did not pass")
	}
	checkFidelity(t, sc, cat, rep)
	n := rep.Nodes[0]
	if n.PeakActive != n.ProcessLimit {
		t.Errorf("peak active %d, want the process limit %d", n.PeakActive, n.ProcessLimit)
	}
	if len(n.StressEpisodes) != 1 || n.StressEpisodes[0].Exited == nil {
		t.Errorf("episodes %+v, want one that ended", n.StressEpisodes)
	}
	if n.Messages.Accepted == 0 || n.Messages.Lost != 0 || n.Messages.Duplicated != 0 {
		t.Errorf("messages %+v, want some accepted, none lost or duplicated", n.Messages)
	}

	// Read MailHog directly, not through the report: exactly one email, a stress alert for the
	// node, even though the node has left stress since (no email on exit).
	msgs, err := st.MailHog.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		for _, m := range msgs {
			t.Logf("in MailHog: %q", m.Subject)
		}
		t.Fatalf("%d emails in MailHog, want exactly 1", len(msgs))
	}
	m := msgs[0]
	if !strings.HasPrefix(m.Subject, StressPrefix) || !strings.Contains(m.Subject, n.Name) {
		t.Errorf("subject %q, want it to start with %q and name %s", m.Subject, StressPrefix, n.Name)
	}
	if len(m.To) != 1 || m.To[0] != AdminAddress {
		t.Errorf("sent to %v, want %s", m.To, AdminAddress)
	}
	// The parts are quoted-printable: join its soft line breaks before reading.
	body := strings.ReplaceAll(m.Body, "=\r\n", "")
	t.Logf("the alert email, %q:\n%s", m.Subject, body)
	for _, want := range []string{n.Model, "still", "10"} {
		if !strings.Contains(body, want) {
			t.Errorf("body does not mention %q:\n%s", want, body)
		}
	}
	if os.Getenv("MTASTRESS_KEEP_REPORT") != "" {
		_ = rep.WriteJSON(os.Getenv("MTASTRESS_KEEP_REPORT"))
	}
}
