package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/alerts"
	"github.com/mtastress/mtastress/events"
)

const (
	// historyWindow is how far back `alerts history` looks: the week of the frequency rule
	// plus slack, as long as the bucket keeps what was sent.
	historyWindow = 8 * 24 * time.Hour
	// toolTimeout bounds the NATS work of history and status, connecting included.
	toolTimeout = 10 * time.Second
	// drainTimeout bounds the daemon's last step: acks and replies in flight reach NATS.
	drainTimeout = 10 * time.Second
	// setupRetryMax caps the wait between attempts to set up streams and bucket.
	setupRetryMax = 30 * time.Second
)

func newAlerts(g *globals) *cobra.Command {
	var path string
	var check bool
	cmd := &cobra.Command{
		Use:   "alerts --config FILE [--check]",
		Short: "Run the alert service: mail operators when MTA nodes are in stress",
		Long: `alerts runs the alert service beside the NATS cluster the MTA nodes publish to. It reads
their stress transitions and load samples from JetStream, keeps its state in a KV bucket, and
mails the admin addresses one "MTA Stress" email per episode and a "Frequent MTA Stress"
advisory with a diagnosis when a node enters stress twice in a rolling week. Replicas on the
same durable consumer send each email once.

--check validates the file (and --models) and exits: 0 when it is valid, 2 with
file:line:col and the key when not.

SIGTERM or SIGINT stops it: events in flight are finished or left for redelivery, then the
NATS connection is drained. SIGHUP reads the file (and --models) again and applies the admin
addresses, sender, relay and its TLS, rosters, settle window, max_alert_age, retries and send
timeout to the next alert, those waiting in the outbox included; keys that need a restart
(nats, durable, bucket, replicas, replica, ack_wait, the models) are named in the log, and a
file that does not load keeps the running config. The log level is info unless --log-level
says otherwise. See docs/alerts.md for the file's keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAlerts(cmd, g, path, check)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "the alert service's configuration `FILE` (YAML)")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and exit")
	_ = cmd.MarkFlagRequired("config")
	cmd.AddCommand(newAlertsHistory(), newAlertsStatus())
	return cmd
}

func runAlerts(cmd *cobra.Command, g *globals, path string, check bool) error {
	fc, err := alerts.LoadConfigFile(path)
	if err != nil {
		return &exitError{exitBadInput, err}
	}
	cat, err := g.catalog()
	if err != nil {
		return err
	}
	if check {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (relay %s, admin %s)\n",
			path, fc.Service.Relay, strings.Join(fc.Service.Admin, ", "))
		return nil
	}
	log, err := daemonLogger(cmd, g.logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP is caught before anything starts: its default would end the process. One that
	// comes before the service exists waits in the channel.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)

	nc, err := events.Connect(fc.NATS, log)
	if err != nil {
		return &exitError{exitBadInput, fmt.Errorf("%s: nats: %w", path, err)}
	}
	defer drain(nc, log)
	js, err := jetstream.New(nc)
	if err != nil {
		return &exitError{exitEnvironment, err}
	}
	cfg := fc.Service
	cfg.JS, cfg.Catalog, cfg.Logger = js, cat, log
	svc, err := alerts.New(cfg)
	if err != nil {
		return &exitError{exitBadInput, fmt.Errorf("%s: %w", path, err)}
	}
	log.Info("alerts config", "file", path, "nats", natsLogValue(fc.NATS), "alerts", svc.Config())

	// Reloads run beside the service, whether it is running or still waiting for NATS, and
	// end before the command returns.
	rctx, stopReloads := context.WithCancel(ctx)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-rctx.Done():
				return
			case <-hups:
				reloadAlerts(g, path, fc.NATS, svc, log)
			}
		}
	}()
	err = runService(ctx, svc, log)
	stopReloads()
	<-reloads
	return err
}

// reloadAlerts reads the file again and applies it to svc. conn is the nats block the
// connection was made from at start: it stays in use until a restart.
func reloadAlerts(g *globals, path string, conn events.ConnConfig, svc *alerts.Service, log *slog.Logger) {
	log.Info("SIGHUP: reloading the config", "file", path)
	restart, err := reloadService(g, path, conn, svc)
	if err != nil {
		log.Error("config not reloaded; the running config stays", "err", err)
		return
	}
	if len(restart) > 0 {
		log.Warn("config changes that need a restart were not applied", "keys", restart)
	}
}

// reloadService loads the file and the catalog as runAlerts does and hands them to
// svc.Reload, which logs what it applied. It returns the keys that need a restart.
func reloadService(g *globals, path string, conn events.ConnConfig, svc *alerts.Service) ([]string, error) {
	fc, err := alerts.LoadConfigFile(path)
	if err != nil {
		return nil, err
	}
	cat, err := g.catalog()
	if err != nil {
		return nil, err
	}
	cfg := fc.Service
	// The running connection: Reload keeps it as it keeps every setting that needs a restart.
	cfg.JS, cfg.Catalog = svc.Config().JS, cat
	restart, err := svc.Reload(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !reflect.DeepEqual(fc.NATS, conn) {
		restart = append([]string{"nats"}, restart...)
	}
	return restart, nil
}

// runService runs svc until ctx ends. While NATS is away or JetStream not ready at start, it
// tries again with backoff instead of exiting: the service belongs beside NATS, and comes up
// with it.
func runService(ctx context.Context, svc *alerts.Service, log *slog.Logger) error {
	delay := time.Second
	for {
		err := svc.Run(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
			log.Info("alerts stopped")
			return nil
		case !errors.Is(err, alerts.ErrSetup):
			return &exitError{exitEnvironment, err}
		}
		log.Error("alert service cannot start yet; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, setupRetryMax)
	}
}

// natsLogValue is the connection's settings for the log, secrets redacted.
func natsLogValue(c events.ConnConfig) slog.Value {
	c = c.Redacted()
	return slog.GroupValue(slog.Any("urls", c.URLs), slog.String("name", c.Name),
		slog.String("user", c.User), slog.String("password", c.Password), slog.String("token", c.Token),
		slog.String("nkey_file", c.NKeyFile), slog.String("creds_file", c.CredsFile),
		slog.Group("tls", "ca_file", c.TLS.CAFile, "cert_file", c.TLS.CertFile, "key_file", c.TLS.KeyFile,
			"required", c.TLS.Required))
}

// drain lets the acks and replies in flight reach NATS before the connection closes.
func drain(nc *nats.Conn, log *slog.Logger) {
	// The disconnect that draining causes is no news for the log.
	nc.SetDisconnectErrHandler(nil)
	closed := make(chan struct{})
	var once sync.Once
	nc.SetClosedHandler(func(*nats.Conn) { once.Do(func() { close(closed) }) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(drainTimeout):
		log.Warn("NATS drain did not finish; closing", "timeout", drainTimeout)
		nc.Close()
	}
}

// natsTarget is how the tools find NATS: the daemon's file, or a URL.
type natsTarget struct {
	config, url, bucket string
}

func (t *natsTarget) flags(cmd *cobra.Command, withBucket bool) {
	cmd.Flags().StringVar(&t.config, "config", "", "the alert service's configuration `FILE`: its nats block and bucket")
	cmd.Flags().StringVar(&t.url, "nats", "", "the NATS server `URL`, as in nats://127.0.0.1:4222, instead of --config")
	cmd.MarkFlagsOneRequired("config", "nats")
	cmd.MarkFlagsMutuallyExclusive("config", "nats")
	if withBucket {
		cmd.Flags().StringVar(&t.bucket, "bucket", alerts.DefaultBucket, "with --nats: the alert service's KV bucket `NAME`")
		cmd.MarkFlagsMutuallyExclusive("config", "bucket")
	}
}

// connect returns a connected client, or an error once toolTimeout passed without one.
func (t *natsTarget) connect(ctx context.Context) (*nats.Conn, string, error) {
	conn := events.ConnConfig{URLs: []string{t.url}, Name: "mtastress alerts tool"}
	bucket := t.bucket
	if t.config != "" {
		fc, err := alerts.LoadConfigFile(t.config)
		if err != nil {
			return nil, "", &exitError{exitBadInput, err}
		}
		conn, bucket = fc.NATS, cmp.Or(fc.Service.Bucket, alerts.DefaultBucket)
	}
	nc, err := events.Connect(conn, nil)
	if err != nil {
		return nil, "", &exitError{exitBadInput, err}
	}
	// Connect keeps trying in the background, as a daemon should; a tool gives up.
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			why := "no answer"
			if last := nc.LastError(); last != nil {
				why = last.Error()
			}
			nc.Close()
			return nil, "", &exitError{exitEnvironment, fmt.Errorf("cannot reach NATS at %s: %s", strings.Join(conn.URLs, ", "), why)}
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nc, bucket, nil
}

func newAlertsHistory() *cobra.Command {
	var t natsTarget
	var node, cluster string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history [--node N] [--cluster C] [--config FILE | --nats URL]",
		Short: "List the stress alerts and advisories sent in the last 8 days",
		Long: `history reads the alert service's KV bucket and lists every alert the relay accepted in
the last 8 days, oldest first: the time of the event it is about, its kind (stress or
frequent), cluster, node, diagnosis and subject. A cluster-wide advisory has no node; --node
lists those of the node's cluster too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), toolTimeout)
			defer cancel()
			nc, bucket, err := t.connect(ctx)
			if err != nil {
				return err
			}
			defer nc.Close()
			return alertsHistory(ctx, cmd.OutOrStdout(), nc, bucket, node, cluster, asJSON)
		},
	}
	t.flags(cmd, true)
	cmd.Flags().StringVar(&node, "node", "", "only alerts about node `N`")
	cmd.Flags().StringVar(&cluster, "cluster", "", "only alerts about cluster `C`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
	return cmd
}

func alertsHistory(ctx context.Context, w io.Writer, nc *nats.Conn, bucket, node, cluster string, asJSON bool) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return &exitError{exitEnvironment, err}
	}
	all, err := alerts.History(ctx, js, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return &exitError{exitEnvironment, fmt.Errorf("no bucket %s: has the alert service run on this NATS?", bucket)}
	}
	if err != nil {
		return &exitError{exitEnvironment, err}
	}
	list := filterHistory(all, node, cluster, time.Now().Add(-historyWindow))
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "no alerts sent in the last 8 days")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tCLUSTER\tNODE\tDIAGNOSIS\tSUBJECT")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Date.UTC().Format(time.RFC3339), a.Kind, a.Cluster,
			dash(a.Node), dash(a.Diagnosis), a.Subject)
	}
	return tw.Flush()
}

// filterHistory keeps the alerts sent since since, about node and cluster when given. A
// cluster-wide advisory (no node) goes with every node of its cluster.
func filterHistory(all []alerts.SentAlert, node, cluster string, since time.Time) []alerts.SentAlert {
	var nodeClusters []string
	for _, a := range all {
		if node != "" && a.Node == node && !slices.Contains(nodeClusters, a.Cluster) {
			nodeClusters = append(nodeClusters, a.Cluster)
		}
	}
	list := []alerts.SentAlert{}
	for _, a := range all {
		switch {
		case a.Sent.Before(since):
		case cluster != "" && a.Cluster != cluster:
		case node != "" && a.Node != node && (a.Node != "" || !slices.Contains(nodeClusters, a.Cluster)):
		default:
			list = append(list, a)
		}
	}
	return list
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAlertsStatus() *cobra.Command {
	var t natsTarget
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--config FILE | --nats URL]",
		Short: "Ask a running alert service for its state",
		Long: `status asks the alert service's NATS micro endpoint (` + alerts.StatusSubject + `); one replica
answers with every cluster's nodes, advisories waiting for their settle window, alerts not
yet accepted by the relay, and the relay's last refusal.

Exit codes: 0 answered; 1 the service answered with an error; 2 bad input; 3 NATS cannot be
reached or no alert service answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), toolTimeout)
			defer cancel()
			nc, _, err := t.connect(ctx)
			if err != nil {
				return err
			}
			defer nc.Close()
			return alertsStatus(ctx, cmd.OutOrStdout(), nc, asJSON)
		},
	}
	t.flags(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the service's JSON answer as it is")
	return cmd
}

func alertsStatus(ctx context.Context, w io.Writer, nc *nats.Conn, asJSON bool) error {
	reply, err := nc.RequestWithContext(ctx, alerts.StatusSubject, nil)
	if errors.Is(err, nats.ErrNoResponders) {
		return &exitError{exitEnvironment, fmt.Errorf("no alert service answers on %s", alerts.StatusSubject)}
	}
	if err != nil {
		return &exitError{exitEnvironment, fmt.Errorf("status request: %w", err)}
	}
	if msg := reply.Header.Get(micro.ErrorHeader); msg != "" {
		return &exitError{exitFailed, fmt.Errorf("the alert service answered %s: %s",
			reply.Header.Get(micro.ErrorCodeHeader), msg)}
	}
	if asJSON {
		_, err := fmt.Fprintf(w, "%s\n", reply.Data)
		return err
	}
	var st alerts.Status
	if err := json.Unmarshal(reply.Data, &st); err != nil {
		return &exitError{exitFailed, fmt.Errorf("status answer %q: %w", reply.Data, err)}
	}
	fmt.Fprintf(w, "replica %s, up since %s, %d alerts sent by this replica\n",
		st.Replica, st.Started.UTC().Format(time.RFC3339), st.SentHere)
	if len(st.Clusters) == 0 {
		fmt.Fprintln(w, "no clusters seen yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tNODES\tPENDING\tOUTBOX\tSENT\tLAST RELAY ERROR")
	for _, c := range st.Clusters {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", c.Cluster, c.Nodes, c.Pending, c.Outbox, c.Sent, dash(c.LastError))
	}
	return tw.Flush()
}
