package simulator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mtastress/mtastress/scenarios"
)

// coveredElsewhere are built-ins that another end-to-end test already replays in full;
// running them twice would only spend CI time.
var coveredElsewhere = map[string]string{
	"spam-burst": "TestReplaySpamBurstEndToEnd",
}

// TestBuiltinScenariosPass replays every built-in scenario against the embedded stack and holds
// each to its own expect block: the library is the product's claim about how it behaves under
// attack, so a scenario that no longer passes is a regression, whichever component moved.
//
// The scenarios run one after another, never in parallel: each loads the machine on purpose,
// and two at once on CI's two cores would measure each other instead of the product.
func TestBuiltinScenariosPass(t *testing.T) {
	if testing.Short() {
		t.Skip("replays every built-in live, about 30 s each")
	}
	cat := scenarios.DefaultCatalog()
	for _, info := range scenarios.Builtins() {
		t.Run(info.Name, func(t *testing.T) {
			if other, ok := coveredElsewhere[info.Name]; ok {
				t.Skipf("replayed by %s", other)
			}
			replayBuiltin(t, info.Name, cat)
		})
	}
}

// replayBuiltin runs one built-in on a fresh stack and fails with the text report unless
// every expectation held.
func replayBuiltin(t *testing.T, name string, cat *scenarios.Catalog) {
	t.Helper()
	sc, err := scenarios.Builtin(name, cat)
	if err != nil {
		t.Fatal(err)
	}
	// A generous bound: a built-in takes about 40 s, but a hung drain must not hang CI.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := StartStack(ctx, sc, StackOptions{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	started := time.Now()
	rep, err := Replay(ctx, sc, st, ReplayOptions{})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !rep.Passed {
		var text strings.Builder
		rep.WriteText(&text)
		t.Fatalf("%s did not pass:\n%s", name, text.String())
	}
	t.Logf("%s passed in %v", name, time.Since(started).Round(100*time.Millisecond))
	// The planner must predict what the live run measured (issue 7, fidelity).
	checkFidelity(t, sc, cat, rep)
}
