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
	var remote simulator.RemoteOptions
	cmd := &cobra.Command{
		Use:   "replay [SCENARIO|FILE]",
		Short: "Replay an email-attack scenario against the embedded stack and check the alerts",
		Long: `Replay starts NATS, MailHog, a next-hop sink, one MTA per scenario node and the alert
service in this process, runs the scenario's traffic over real SMTP, waits for the spools to
drain, and checks the alerts in MailHog against the scenario's expectations. With --nats
alone, they use that NATS instead of starting one (see docs/events.md); with --mta, the replay
follows running systems. The report says what happened, so the embedded components log
only errors unless --log-level is given.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 bad input; 3 the
environment could not start.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := defaultScenario
			if len(args) == 1 {
				target = args[0]
			}
			level := g.logLevel
			if f := cmd.Flag("log-level"); f == nil || !f.Changed {
				level = "error"
			}
			return runReplay(cmd.Context(), g, level, target, jsonOut, htmlOut, remote)
		},
	}
	cmd.Flags().StringVar(&jsonOut, "json", "", "write the JSON report to `FILE`")
	cmd.Flags().StringVar(&htmlOut, "html", "", "write a self-contained HTML report with load charts to `FILE`")
	cmd.Flags().StringSliceVar(&remote.MTAs, "mta", nil,
		"replay against running MTAs instead of embedded ones: `host:port[,host:port]`, one per scenario node in topology order")
	cmd.Flags().StringVar(&remote.MailHogURL, "mailhog", "", "with --mta: the `URL` of the MailHog API the alerts reach")
	cmd.Flags().StringVar(&remote.NATSURL, "nats", "",
		"NATS `URL` (comma-separated for a cluster): with --mta, where the nodes publish their load; "+
			"alone, the embedded MTAs and alert service use it instead of an embedded NATS")
	return cmd
}

func runReplay(ctx context.Context, g *globals, level, target, jsonOut, htmlOut string, remote simulator.RemoteOptions) error {
	sc, cat, err := g.scenario(target)
	if err != nil {
		return err
	}
	if err := checkOutputs(map[string]string{"json": jsonOut, "html": htmlOut}); err != nil {
		return err
	}
	log, err := newLogger(level)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "replaying %s\n", describeRun(sc))
	tg, closeTarget, err := replayTarget(ctx, sc, cat, log, remote)
	if err != nil {
		return err
	}
	defer closeTarget()

	rep, err := simulator.Replay(ctx, sc, tg, simulator.ReplayOptions{Logger: log, Progress: progress()})
	if errors.Is(err, simulator.ErrNotSupported) {
		return &exitError{exitBadInput, err}
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	rep.WriteText(os.Stdout)
	if err := writeReports(rep, jsonOut, htmlOut); err != nil {
		return err
	}
	if !rep.Passed {
		return &exitError{exitFailed, errors.New("an expectation failed")}
	}
	return nil
}

// replayTarget starts the embedded stack, or follows running systems when --mta is given.
func replayTarget(ctx context.Context, sc *scenarios.Scenario, cat *scenarios.Catalog, log *slog.Logger,
	remote simulator.RemoteOptions) (simulator.Target, func(), error) {
	if len(remote.MTAs) == 0 {
		if remote.MailHogURL != "" {
			return nil, nil, &exitError{exitBadInput, errors.New("--mailhog goes with --mta")}
		}
		st, err := simulator.StartStack(ctx, sc, simulator.StackOptions{Logger: log, Catalog: cat.WithOverrides(sc.Models),
			NATSURL: remote.NATSURL})
		if errors.Is(err, simulator.ErrNotSupported) {
			return nil, nil, &exitError{exitBadInput, err}
		}
		if err != nil {
			return nil, nil, err
		}
		return st, st.Close, nil
	}
	remote.Logger = log
	rm, err := simulator.NewRemote(sc, remote)
	if errors.Is(err, simulator.ErrTarget) {
		return nil, nil, &exitError{exitBadInput, err}
	}
	if err != nil {
		return nil, nil, err
	}
	return rm, rm.Close, nil
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
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
