package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ciBudget is the live time a built-in may take: with the end-of-replay
// drain it must finish in about 40 s of real time on CI.
const ciBudget = 30 * time.Second

func TestEveryBuiltinParses(t *testing.T) {
	infos := Builtins()
	if len(infos) == 0 {
		t.Fatal("no built-in scenarios")
	}
	for _, info := range infos {
		t.Run(info.Name, func(t *testing.T) {
			s, err := Builtin(info.Name, DefaultCatalog())
			if err != nil {
				t.Fatalf("Builtin: %v", err)
			}
			if s.Name != info.Name {
				t.Errorf("file builtin/%s.yaml is named %q inside; they must agree", info.Name, s.Name)
			}
			if s.Description == "" || s.Description != info.Description {
				t.Errorf("description %q, listed as %q; want the same, not empty", s.Description, info.Description)
			}
			if s.File != "builtin:"+info.Name {
				t.Errorf("File = %q, want builtin:%s", s.File, info.Name)
			}
			if d := s.LiveDuration(); d > ciBudget {
				t.Errorf("live duration %v exceeds the CI budget of %v", d, ciBudget)
			}
			if len(s.Expect) == 0 {
				t.Error("a built-in without expectations proves nothing")
			}
		})
	}
}

func TestBuiltinsSorted(t *testing.T) {
	names := []string{}
	for _, info := range Builtins() {
		names = append(names, info.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("Builtins() not sorted: %v", names)
	}
	// The library the README and docs/scenarios.md promise, no more and no less.
	want := []string{"backscatter-storm", "botnet-flood", "cluster-capacity", "cluster-imbalance",
		"directory-harvest", "slowloris", "spam-burst", "steady-baseline", "weekly-repeat"}
	if !slices.Equal(names, want) {
		t.Errorf("Builtins() = %v, want %v", names, want)
	}
}

// TestSpamBurstOversubscribes checks the arithmetic the scenario relies on:
// normal load stays far below the limit, the burst far above it.
func TestSpamBurstOversubscribes(t *testing.T) {
	s, err := Builtin("spam-burst", nil)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := s.Node("edge-1")
	if node.ProcessLimit != 10 || len(s.Topology.Nodes) != 1 || s.Topology.Cluster != "edge" {
		t.Fatalf("topology = %+v, want one T10 edge-1 in cluster edge", s.Topology)
	}
	if s.Profiles["normal"].Hold != nil {
		t.Error("normal sessions hold their slot; the baseline could fill the node")
	}
	spam := s.Profiles["spam"]
	burst := s.Phases[1]
	meanHold := (spam.Hold.Min + spam.Hold.Max).Seconds() / 2
	if demand := burst.Rate * burst.Mix["spam"] * meanHold; demand < 5*float64(node.ProcessLimit) {
		t.Errorf("burst asks for %.0f slots; want many times the limit of %d", demand, node.ProcessLimit)
	}
	var names []string
	for _, e := range s.Expect {
		names = append(names, e.String())
	}
	want := []string{"alert stress node=edge-1 count=1", "alert frequent count=0", "lost max=0", "peak_active node=edge-1 min=10"}
	if !slices.Equal(names, want) {
		t.Errorf("expectations %q, want %q", names, want)
	}
}

func TestBuiltinUnknown(t *testing.T) {
	_, err := Builtin("no-such", nil)
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "spam-burst") {
		t.Errorf("Builtin(no-such) = %v, want ErrUnknown listing the built-ins", err)
	}
}

func TestLoad(t *testing.T) {
	t.Run("a built-in name", func(t *testing.T) {
		s, err := Load("spam-burst", nil)
		if err != nil || s.File != "builtin:spam-burst" {
			t.Fatalf("Load(spam-burst) = %v, %v", s, err)
		}
	})
	t.Run("a file path", func(t *testing.T) {
		s, err := Load("testdata/good/minimal.yaml", nil)
		if err != nil || s.File != "testdata/good/minimal.yaml" {
			t.Fatalf("Load(file) = %v, %v", s, err)
		}
	})
	t.Run("an invalid file keeps its position", func(t *testing.T) {
		_, err := Load("testdata/bad/model-unknown.yaml", nil)
		var e *Error
		if !errors.As(err, &e) || e.Line != 6 || errors.Is(err, ErrUnknown) {
			t.Fatalf("Load(bad file) = %v, want an *Error at line 6", err)
		}
	})
	t.Run("neither", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
		if !errors.Is(err, ErrUnknown) || errors.Is(err, ErrInvalid) {
			t.Fatalf("Load(missing) = %v, want ErrUnknown", err)
		}
	})
	t.Run("a directory", func(t *testing.T) {
		if _, err := Load(t.TempDir(), nil); !errors.Is(err, ErrUnknown) {
			t.Fatalf("Load(dir) = %v, want ErrUnknown", err)
		}
	})
	t.Run("built-ins win over files", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if err := os.WriteFile("spam-burst", []byte("not: a scenario\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load("spam-burst", nil); err != nil {
			t.Fatalf("Load(spam-burst) read the file: %v", err)
		}
	})
}
