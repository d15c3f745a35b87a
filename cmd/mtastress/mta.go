package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/mta"
)

func newMTA(g *globals) *cobra.Command {
	var path string
	var check bool
	cmd := &cobra.Command{
		Use:   "mta --config FILE [--check]",
		Short: "Run a production MTA node from its configuration file",
		Long: `mta runs one gateway node: SMTP on the configured listeners, the durable spool, relay
delivery, Prometheus /metrics, and load and stress events on NATS when configured.

--check validates the file (and the model against the catalog) and exits: 0 when it is
valid, 2 with file:line:col and the key when not.

Signals: SIGTERM or SIGINT stops gracefully (sessions finish until shutdown_timeout, the
spool is kept; a second signal cuts the wait short). SIGHUP reloads the recipient policy,
routing, rate limits, certificate and session limits; keys that need a restart are named in
the log. A daemon logs at info unless --log-level is given (the flag's "warn" default is
for the tools).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMTA(cmd, g, path, check)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "the node's configuration `FILE` (YAML)")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and exit")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func runMTA(cmd *cobra.Command, g *globals, path string, check bool) error {
	fc, limit, err := loadMTAFile(g, path)
	if err != nil {
		return err
	}
	if check {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (node %s, cluster %s, model %s, limit %d)\n",
			path, fc.MTA.Node, fc.MTA.Cluster, fc.MTA.Model, limit)
		return nil
	}
	log, err := daemonLogger(cmd, g.logLevel)
	if err != nil {
		return err
	}
	// Signals are caught before anything starts: SIGHUP's default would end the process.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	log.Info("mta config", "file", path, "limit", limit, "config", fc)
	d, err := mta.StartDaemon(fc, limit, log)
	switch {
	case errors.Is(err, mta.ErrInvalidConfig):
		return &exitError{exitBadInput, fmt.Errorf("%s: %w", path, err)}
	case err != nil:
		return &exitError{exitEnvironment, err}
	}
	return superviseMTA(cmd.Context(), d, sigs, func() { reloadMTA(g, path, d, log) }, fc.ShutdownTimeout, log)
}

// loadMTAFile reads the file and resolves its model to the process limit through the catalog.
func loadMTAFile(g *globals, path string) (mta.FileConfig, int, error) {
	fc, err := mta.LoadConfigFile(path)
	if err != nil {
		return fc, 0, &exitError{exitBadInput, err}
	}
	cat, err := g.catalog()
	if err != nil {
		return fc, 0, err
	}
	m, ok := cat.Lookup(fc.MTA.Model)
	if !ok {
		return fc, 0, &exitError{exitBadInput, fc.ErrorAt("model", "unknown model %q; the catalog has %s",
			fc.MTA.Model, strings.Join(cat.Names(), ", "))}
	}
	if err := fc.MTAConfig(m.ProcessLimit).Validate(); err != nil {
		return fc, 0, &exitError{exitBadInput, fmt.Errorf("%s: %w", path, err)}
	}
	return fc, m.ProcessLimit, nil
}

// superviseMTA runs until a stop signal, ctx's end or a listener failing, reloading on SIGHUP.
func superviseMTA(ctx context.Context, d *mta.Daemon, sigs <-chan os.Signal, reload func(),
	timeout time.Duration, log *slog.Logger) error {
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				reload()
				continue
			}
			stopMTA(d, sigs, timeout, log, s.String())
			return nil
		case <-ctx.Done():
			stopMTA(d, sigs, timeout, log, "context done")
			return nil
		case err := <-d.Err():
			log.Error("stopping: a listener failed", "err", err)
			stopMTA(d, sigs, timeout, log, "listener failed")
			return &exitError{exitEnvironment, err}
		}
	}
}

func reloadMTA(g *globals, path string, d *mta.Daemon, log *slog.Logger) {
	log.Info("SIGHUP: reloading the config", "file", path)
	fc, _, err := loadMTAFile(g, path)
	if err == nil {
		_, err = d.Reload(fc)
	}
	if err != nil {
		log.Error("config not reloaded; the running config stays", "err", err)
	}
}

// stopMTA shuts the node down gracefully within timeout; a second stop signal cuts it short.
func stopMTA(d *mta.Daemon, sigs <-chan os.Signal, timeout time.Duration, log *slog.Logger, why string) {
	log.Info("shutting down", "reason", why, "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Warn("shutdown deadline passed; the remaining sessions got 421", "err", err)
			}
			return
		case s := <-sigs:
			if s != syscall.SIGHUP {
				log.Warn("second stop signal: closing the remaining sessions now", "signal", s.String())
				cancel()
			}
		}
	}
}

// daemonLogger writes the operator and mail logs to the command's stderr. A daemon logs at
// info unless --log-level was given: its start, listeners and reloads belong in the log.
func daemonLogger(cmd *cobra.Command, level string) (*slog.Logger, error) {
	if f := cmd.Flag("log-level"); f == nil || !f.Changed {
		level = "info"
	}
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: l})), nil
}
