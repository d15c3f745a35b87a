package alerts

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

func TestMessageIsMultipartAlternative(t *testing.T) {
	f := newFleet(t)
	_, as, _ := Apply(State{}, f.entered("edge", "edge-1", t0, 10), t0, RuleConfig{})
	raw := as[0].Message("alerts@example.test", []string{"ops@example.test", "noc@example.test"})

	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Subject"); got != "MTA Stress: edge-1 (edge) reached its process limit" {
		t.Errorf("subject %q", got)
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(t0) {
		t.Errorf("Date %v (%v), want the entry time %v", d, err, t0)
	}
	if got, want := m.Header.Get("Message-ID"), "<edge.edge-1.1796634000000000000@mtastress>"; got != want {
		t.Errorf("Message-ID %q, want %q", got, want)
	}
	typ, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || typ != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p) // quoted-printable is decoded by NextPart
		if !strings.Contains(string(body), "2026-12-07T09:00:00Z") {
			t.Errorf("%s part lacks the entry time", p.Header.Get("Content-Type"))
		}
		types = append(types, strings.SplitN(p.Header.Get("Content-Type"), ";", 2)[0])
	}
	if strings.Join(types, ",") != "text/plain,text/html" {
		t.Errorf("parts %v, want text/plain then text/html", types)
	}
	if !bytes.Equal(raw, as[0].Message("alerts@example.test", []string{"ops@example.test", "noc@example.test"})) {
		t.Error("the same alert renders different bytes: a resend would not be identical")
	}
}

func TestMessageIDOfAdvisory(t *testing.T) {
	got := messageID(frequentKey("edge", "", time.Unix(0, 42)))
	if want := "<frequent.edge.*.42@mtastress>"; got != want {
		t.Errorf("messageID = %q, want %q", got, want)
	}
	if _, err := mail.ParseAddress("x " + strings.Replace(got, "@mtastress", "@mtastress.test", 1)); err != nil {
		t.Errorf("%s is not a valid msg-id: %v", got, err)
	}
}

func TestCapacityAdvisorySuggestsNodesAndModel(t *testing.T) {
	f := newFleet(t)
	day := 24 * time.Hour
	steps := append(roster(f, "cap", t0, "a", "b"),
		ev(f.entered("cap", "a", t0, 18)),
		ev(f.entered("cap", "b", t0.Add(time.Hour), 16)),
		ev(f.entered("cap", "a", t0.Add(day), 20)),
		at(t0.Add(2*day)))
	got, _ := run(t, RuleConfig{Catalog: scenarios.DefaultCatalog()}, steps)
	adv := got[len(got)-1]
	if adv.Diagnosis != DiagCapacity || adv.Node != "" {
		t.Fatalf("got %+v, want a cluster-wide capacity advisory", briefs(got))
	}
	text := strings.Join(strings.Fields(adv.Text), " ")
	// Peaks 20 and 16 make 36 sessions: 4 nodes of T10, or T25 for each of the 2.
	for _, want := range []string{"about 4 nodes of T10", "36 sessions", "move every node to T25"} {
		if !strings.Contains(text, want) {
			t.Errorf("advisory lacks %q:\n%s", want, adv.Text)
		}
	}
	if strings.HasPrefix(adv.Subject, "MTA Stress:") || !strings.HasPrefix(adv.Subject, "Frequent MTA Stress: ") {
		t.Errorf("subject %q", adv.Subject)
	}
}
