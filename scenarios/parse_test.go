package scenarios

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func dur(d time.Duration) *time.Duration { return &d }
func num(n int) *int                     { return &n }

// approx absorbs rounding in normalised mixes.
var approx = cmpopts.EquateApprox(0, 1e-12)

func TestGoodFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *Scenario
	}{
		{"testdata/good/design-example.yaml", designExample()},
		{"testdata/good/minimal.yaml", minimal()},
		{"testdata/good/all-keys.yaml", allKeys()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(tc.file, data, nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, approx); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func defaultProfile(name string) Profile {
	return Profile{
		Name: name, Messages: IntRange{1, 1}, Recipients: IntRange{1, 1},
		Size: FloatRange{2048, 2048}, Clients: 1000,
	}
}

func designExample() *Scenario {
	normal := defaultProfile("normal")
	normal.Recipients, normal.Size = IntRange{1, 3}, FloatRange{2 << 10, 40 << 10}
	spam := defaultProfile("spam")
	spam.Messages, spam.Recipients = IntRange{1, 3}, IntRange{5, 30}
	spam.Size, spam.Hold = FloatRange{1 << 10, 8 << 10}, &DurRange{2 * time.Second, 6 * time.Second}
	slow := defaultProfile("slow")
	slow.Drip, slow.Hold, slow.Clients = &Rate{1, 2 * time.Second}, &DurRange{time.Minute, time.Minute}, 5
	harvest := defaultProfile("harvest")
	harvest.Recipients, harvest.Invalid = IntRange{50, 200}, 0.95
	bounce := defaultProfile("bounce")
	bounce.Sender, bounce.Invalid = "<>", 0.7
	return &Scenario{
		File:        "testdata/good/design-example.yaml",
		Name:        "spam-burst",
		Description: "A spam run hits a stand-alone node at many times its normal rate.",
		Seed:        7,
		MTA:         MTAOverrides{Cooldown: dur(5 * time.Second)},
		Models:      map[string]int{"T10": 12},
		Topology:    Topology{Cluster: "edge", Nodes: []Node{{"edge-1", "T10", 1, 12}}},
		Profiles: map[string]Profile{
			"normal": normal, "spam": spam, "slow": slow, "harvest": harvest, "bounce": bounce,
		},
		Phases: []Phase{
			{Name: "baseline", Duration: 10 * time.Second, Rate: 2, Mix: map[string]float64{"normal": 1}},
			{Name: "burst", Duration: 20 * time.Second, Rate: 40, Ramp: 3 * time.Second,
				Mix: map[string]float64{"spam": 0.9, "normal": 0.1}},
			{Name: "calm", Duration: 15 * time.Second, Rate: 2, Mix: map[string]float64{"normal": 1}},
			{Name: "days-later", Duration: 72 * time.Hour, Skip: true},
		},
		Expect: []Expectation{
			{Line: 23, Kind: KindAlert, Alert: AlertStress, Node: "edge-1", Count: 1},
			{Line: 24, Kind: KindAlert, Alert: AlertFrequent},
			{Line: 25, Kind: KindLost},
		},
	}
}

func minimal() *Scenario {
	return &Scenario{
		File: "testdata/good/minimal.yaml",
		Name: "minimal",
		Seed: DefaultSeed,
		Topology: Topology{Cluster: "c1", Nodes: []Node{
			{Name: "n1", Model: "T25", Weight: 1, ProcessLimit: 25},
			{Name: "n2", Model: "T25", Weight: 3, ProcessLimit: 25},
		}},
		Profiles: map[string]Profile{"p": defaultProfile("p")},
		Phases: []Phase{
			{Name: "only", Duration: time.Minute, Rate: 0.5, Mix: map[string]float64{"p": 1}},
		},
	}
}

func allKeys() *Scenario {
	bot := Profile{
		Name: "bot", Messages: IntRange{0, 2}, Recipients: IntRange{7, 7},
		Size: FloatRange{1536, 1 << 20}, Sender: "bot@example.org", Clients: 16777214,
		Hold: &DurRange{500 * time.Millisecond, time.Minute}, Drip: &Rate{10, time.Second}, Pregreet: true,
	}
	quiet := defaultProfile("quiet")
	quiet.Size = FloatRange{100, 100}
	half := map[string]float64{"bot": 0.5, "quiet": 0.5}
	return &Scenario{
		File:        "testdata/good/all-keys.yaml",
		Name:        "all-keys",
		Description: "Two nodes, every profile key, every expectation kind.\n",
		Seed:        -42,
		MTA: MTAOverrides{
			SlotWait: dur(1500 * time.Millisecond), WaitMax: num(0), Cooldown: dur(0),
			ClientCap: num(20), StressTimeout: dur(10 * time.Second),
		},
		Models: map[string]int{"T25": 30},
		Topology: Topology{Cluster: "lab_1", Nodes: []Node{
			{Name: "a", Model: "T25", Weight: 0.25, ProcessLimit: 30},
			{Name: "b", Model: "T50", Weight: 1, ProcessLimit: 50},
		}},
		Profiles: map[string]Profile{"bot": bot, "quiet": quiet},
		Phases: []Phase{
			{Name: "warm", Duration: time.Hour, Rate: 0.1, Mix: half},
			{Name: "gap", Duration: 48 * time.Hour, Skip: true},
			{Name: "again", Duration: 30 * time.Second, Rate: 0.5, Ramp: 10 * time.Second, Mix: half},
		},
		Expect: []Expectation{
			{Line: 50, Kind: KindAlert, Alert: AlertStress, Node: "a", Count: 2},
			{Line: 51, Kind: KindAlert, Alert: AlertFrequent, Cluster: "lab_1", Diagnosis: "load-balancing", Count: 1},
			{Line: 55, Kind: KindTempfailedMax, TempfailedMax: 0.05},
			{Line: 56, Kind: KindPeakActive, Node: "a", PeakActive: 30},
			{Line: 57, Kind: KindLost, Lost: 3},
		},
	}
}

func TestParseUsesGivenCatalog(t *testing.T) {
	data, _ := os.ReadFile("testdata/good/minimal.yaml")
	cat := &Catalog{Models: []Model{{"T25", 7}}}
	s, err := Parse("minimal.yaml", data, cat)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Topology.Nodes[0].ProcessLimit; got != 7 {
		t.Errorf("ProcessLimit = %d, want 7 from the given catalog", got)
	}
	if _, err := Parse("minimal.yaml", data, &Catalog{Models: []Model{{"T10", 10}}}); err == nil {
		t.Error("Parse accepted model T25 missing from the given catalog")
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, msg string
	}{
		{"a file over 1 MiB", "name: x\n" + strings.Repeat("# padding\n", 110000), "at most 1048576"},
		{"too many aliases", aliasFlood(20000), "more than 10000 aliases"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("big.yaml", []byte(tc.yaml), nil)
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("Parse = %v, want an *Error containing %q", err, tc.msg)
			}
		})
	}
}

// aliasFlood is a valid scenario whose expect list repeats one alias n times.
func aliasFlood(n int) string {
	var b strings.Builder
	b.WriteString("name: a\ntopology: {cluster: c, nodes: [{name: n, model: T10}]}\n")
	b.WriteString("profiles: {p: {}}\nphases: [{name: x, duration: 1s, rate: 1/s, mix: {p: 1}}]\n")
	b.WriteString("expect:\n  - &e {lost: 0}\n")
	for range n {
		b.WriteString("  - *e\n")
	}
	return b.String()
}
