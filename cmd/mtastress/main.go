// Command mtastress is the mail transport agent that stays up under attack, and the tools that
// prove it: replay, plan, the production daemons and their tools.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/scenarios"
	"github.com/mtastress/mtastress/simulator"
)

// Exit codes (DESIGN.md "The CLI").
const (
	exitOK          = 0
	exitFailed      = 1 // an expectation failed
	exitBadInput    = 2 // unknown scenario, invalid file or flag
	exitEnvironment = 3 // the environment could not start
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	root := newRoot()
	err := root.Execute()
	os.Exit(exitCode(err))
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "mtastress",
		Short:         "A mail transport agent that stays up under attack, and the tools that prove it",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Every command takes --log-level, so every command checks it, even one that logs
		// nothing: a typo must not pass silently.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			_, err := parseLevel(g.logLevel)
			return err
		},
	}
	root.PersistentFlags().StringVar(&g.modelsFile, "models", "", "model catalog `FILE` replacing the built-in one")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "operator log level: debug, info, warn, error")
	root.AddCommand(newReplay(g), newDev(g), newPlan(g), newScenarios(g), newModels(g), newMTA(g), newAlerts(g), newQueue(g))
	return root
}

// globals are the flags every command takes.
type globals struct {
	modelsFile string
	logLevel   string
}

func (g *globals) catalog() (*scenarios.Catalog, error) {
	if g.modelsFile == "" {
		return scenarios.DefaultCatalog(), nil
	}
	cat, err := scenarios.LoadCatalog(g.modelsFile)
	if err != nil {
		return nil, &exitError{exitBadInput, err}
	}
	return cat, nil
}

// scenario loads a built-in or a file against the catalog of --models.
func (g *globals) scenario(target string) (*scenarios.Scenario, *scenarios.Catalog, error) {
	cat, err := g.catalog()
	if err != nil {
		return nil, nil, err
	}
	sc, err := scenarios.Load(target, cat)
	if err != nil {
		return nil, nil, err
	}
	return sc, cat, nil
}

// parseLevel reads --log-level.
func parseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return l, &exitError{exitBadInput, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)}
	}
	return l, nil
}

// checkOutputs makes sure, before a run, that the report files asked for can be written: a
// replay that passes after 30 s and then cannot write its report would turn a pass into an
// exit 2. The check creates and removes a file beside each.
func checkOutputs(outs map[string]string) error {
	for _, flag := range []string{"json", "html"} {
		path := outs[flag]
		if path == "" {
			continue
		}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			return &exitError{exitBadInput, fmt.Errorf("--%s %s: is a directory; give a file name", flag, path)}
		}
		f, err := os.CreateTemp(filepath.Dir(path), ".mtastress-check-*")
		if err != nil {
			return &exitError{exitBadInput, fmt.Errorf("--%s %s: cannot write there: %w", flag, path, err)}
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}

// describeRun names a scenario for the first line of a run: name, seed, and its description
// when it has one.
func describeRun(sc *scenarios.Scenario) string {
	s := fmt.Sprintf("%s (seed %d)", sc.Name, sc.Seed)
	if sc.Description != "" {
		s += ": " + sc.Description
	}
	return s
}

// reportFiles is what replay and plan reports can write.
type reportFiles interface {
	WriteJSON(path string) error
	WriteHTML(path string) error
}

// writeReports writes the --json and --html files that were asked for.
func writeReports(rep reportFiles, jsonOut, htmlOut string) error {
	if jsonOut != "" {
		if err := rep.WriteJSON(jsonOut); err != nil {
			return &exitError{exitBadInput, fmt.Errorf("writing --json: %w", err)}
		}
		fmt.Fprintln(os.Stderr, "wrote", jsonOut)
	}
	if htmlOut != "" {
		if err := rep.WriteHTML(htmlOut); err != nil {
			return &exitError{exitBadInput, fmt.Errorf("writing --html: %w", err)}
		}
		fmt.Fprintln(os.Stderr, "wrote", htmlOut)
	}
	return nil
}

// exitCode maps an error to the documented exit codes and prints it.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "mtastress:", err)
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, scenarios.ErrInvalid), errors.Is(err, scenarios.ErrUnknown):
		return exitBadInput
	case errors.Is(err, simulator.ErrEnvironment):
		return exitEnvironment
	}
	// Cobra's own errors (an unknown flag or command) are bad input too.
	return exitBadInput
}
