package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/mta"
)

// newQueue is `mtastress queue`: the mail queue of a node, running or stopped.
func newQueue(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "queue list|flush [ID]|delete ID|hold ID|release ID --config FILE",
		Short: "List and manage a node's mail queue",
		Long: `queue works on the spool named in the node's configuration file. When the node runs,
it asks it over its control socket (beside the spool, mode 0600), so the daemon does the work
and nothing touches the spool under it; when the node is stopped, it works on the spool
directly. Held messages stay held across restarts until released.

Exit codes: 0 done, 1 no such message (or it is being delivered right now), 2 bad input.`,
	}
	cmd.PersistentFlags().StringVar(&path, "config", "", "the node's configuration `FILE` (YAML)")
	_ = cmd.MarkPersistentFlagRequired("config")
	sub := func(use, short string, args cobra.PositionalArgs, run func(io.Writer, mta.QueueControl, []string) error) {
		cmd.AddCommand(&cobra.Command{Use: use, Short: short, Args: args,
			RunE: func(c *cobra.Command, a []string) error { return runQueue(c, path, a, run) }})
	}
	sub("list", "List queued messages: id, age, size, sender, recipients, attempts, last error, next try",
		cobra.NoArgs, queueList)
	sub("flush [ID]", "Try ID, or every message, now", cobra.MaximumNArgs(1), queueFlush)
	sub("delete ID", "Remove a message without delivering or bouncing it", oneID("delete"),
		queueOp("deleted", mta.QueueControl.Delete))
	sub("hold ID", "Keep a message from delivery until released", oneID("hold"),
		queueOp("held", mta.QueueControl.Hold))
	sub("release ID", "Let a held message go, at once", oneID("release"),
		queueOp("released", mta.QueueControl.Release))
	return cmd
}

// oneID wants exactly one queue ID, and says so in words.
func oneID(verb string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("queue %s takes one message ID (queue list shows them), got %d arguments", verb, len(args))
		}
		return nil
	}
}

func runQueue(c *cobra.Command, path string, args []string, run func(io.Writer, mta.QueueControl, []string) error) error {
	fc, err := mta.LoadConfigFile(path)
	if err != nil {
		return &exitError{exitBadInput, err}
	}
	q, err := mta.OpenQueue(fc.MTA.SpoolDir)
	if errors.Is(err, mta.ErrNoSpool) {
		return &exitError{exitBadInput, fmt.Errorf("%s: spool: %w", path, err)}
	}
	if err != nil {
		return &exitError{exitEnvironment, err}
	}
	defer q.Close()
	err = run(c.OutOrStdout(), q, args)
	if errors.Is(err, mta.ErrNoSuchMessage) || errors.Is(err, mta.ErrInFlight) {
		return &exitError{exitFailed, err}
	}
	return err
}

func queueList(w io.Writer, q mta.QueueControl, _ []string) error {
	entries, err := q.List()
	if err != nil {
		return err
	}
	if !q.Live() {
		fmt.Fprintln(w, "node stopped: last error and next try are known only to a running node")
	}
	_, err = io.WriteString(w, mta.FormatQueue(entries, time.Now()))
	return err
}

func queueFlush(w io.Writer, q mta.QueueControl, args []string) error {
	id := ""
	if len(args) == 1 {
		id = args[0]
	}
	n, err := q.Flush(id)
	if err != nil {
		return err
	}
	if !q.Live() {
		fmt.Fprintln(w, "node stopped: every queued message is tried when it starts")
		return nil
	}
	if n == 1 {
		fmt.Fprintln(w, "1 message due now")
	} else {
		fmt.Fprintf(w, "%d messages due now\n", n)
	}
	return nil
}

func queueOp(done string, op func(mta.QueueControl, string) error) func(io.Writer, mta.QueueControl, []string) error {
	return func(w io.Writer, q mta.QueueControl, args []string) error {
		if err := op(q, args[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "%s: %s\n", args[0], done)
		return err
	}
}
