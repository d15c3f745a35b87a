package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the CLI in-process and returns its exit code.
func run(t *testing.T, args ...string) int {
	t.Helper()
	root := newRoot()
	root.SetArgs(args)
	return exitCode(root.Execute())
}

func TestExitCodesForBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nnot_a_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badModels := filepath.Join(dir, "models.yaml")
	if err := os.WriteFile(badModels, []byte("- {name: T1, process_limit: -3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"an unknown scenario", []string{"replay", "no-such-scenario"}},
		{"an invalid scenario file", []string{"replay", bad}},
		{"an invalid model catalog", []string{"models", "--models", badModels}},
		{"an unknown flag", []string{"replay", "--no-such-flag"}},
		{"a bad log level", []string{"replay", "--log-level", "loud"}},
		// Commands that log nothing check it too.
		{"a bad log level on a listing", []string{"scenarios", "--log-level", "loud"}},
		{"a bad log level on a plan", []string{"plan", "--log-level", "loud"}},
		// A report that cannot be written is found before the run, not after a pass: these
		// return at once (a replay would otherwise take half a minute).
		{"a replay report in a missing directory", []string{"replay", "--html", filepath.Join(dir, "no", "r.html")}},
		{"a replay report that is a directory", []string{"replay", "--json", dir}},
		{"a plan report in a missing directory", []string{"plan", "--json", filepath.Join(dir, "no", "p.json")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := run(t, c.args...); got != exitBadInput {
				t.Fatalf("exit %d, want %d", got, exitBadInput)
			}
		})
	}
}

func TestListCommands(t *testing.T) {
	for _, args := range [][]string{{"scenarios"}, {"models"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if got := run(t, args...); got != exitOK {
				t.Fatalf("exit %d", got)
			}
		})
	}
}
