package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mtastress/mtastress/scenarios"
	"github.com/mtastress/mtastress/simulator"
)

const defaultScenario = "spam-burst"

func newReplay(g *globals) *cobra.Command {
	var jsonOut, htmlOut string
	cmd := &cobra.Command{
		Use:   "replay [SCENARIO|FILE]",
		Short: "Replay an email-attack scenario against the embedded stack and check the alerts",
		Long: `Replay starts NATS, MailHog, a next-hop sink, one MTA per scenario node and the alert
service in this process, runs the scenario's traffic over real SMTP, waits for the spools to
drain, and checks the alerts in MailHog against the scenario's expectations.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 bad input; 3 the
environment could not start.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := defaultScenario
			if len(args) == 1 {
				target = args[0]
			}
			return runReplay(cmd.Context(), g, target, jsonOut, htmlOut)
		},
	}
	cmd.Flags().StringVar(&jsonOut, "json", "", "write the JSON report to `FILE`")
	cmd.Flags().StringVar(&htmlOut, "html", "", "write a self-contained HTML report with load charts to `FILE`")
	return cmd
}

func runReplay(ctx context.Context, g *globals, target, jsonOut, htmlOut string) error {
	cat, err := g.catalog()
	if err != nil {
		return err
	}
	sc, err := scenarios.Load(target, cat)
	if err != nil {
		return err
	}
	log, err := newLogger(g.logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "replaying %s (seed %d): %s\n", sc.Name, sc.Seed, sc.Description)
	st, err := simulator.StartStack(ctx, sc, simulator.StackOptions{Logger: log, Catalog: cat.WithOverrides(sc.Models)})
	if err != nil {
		return err
	}
	defer st.Close()

	rep, err := simulator.Replay(ctx, sc, st, simulator.ReplayOptions{Logger: log, Progress: progress()})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	rep.WriteText(os.Stdout)
	if jsonOut != "" {
		if err := rep.WriteJSON(jsonOut); err != nil {
			return &exitError{exitBadInput, fmt.Errorf("writing --json: %w", err)}
		}
	}
	if htmlOut != "" {
		if err := rep.WriteHTML(htmlOut); err != nil {
			return &exitError{exitBadInput, fmt.Errorf("writing --html: %w", err)}
		}
	}
	if !rep.Passed {
		return &exitError{exitFailed, errors.New("an expectation failed")}
	}
	return nil
}

// progress draws a bar on a terminal; in CI logs it stays quiet.
func progress() func(done, total int) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription("sessions"), progressbar.OptionShowCount(),
				progressbar.OptionClearOnFinish())
		}
		_ = bar.Set(done)
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, &exitError{exitBadInput, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
