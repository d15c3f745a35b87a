package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/simulator"
)

func newDev(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "dev [SCENARIO|FILE]",
		Short: "Start the embedded stack and keep it up, printing its addresses",
		Long: `Dev starts what replay starts (NATS, MailHog, a next-hop sink, one MTA per node of the
scenario's topology, default spam-burst, and the alert service) and keeps it up until
interrupted, so a person can point a mail client or a scenario at it. It sends no traffic.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := defaultScenario
			if len(args) == 1 {
				target = args[0]
			}
			return runDev(cmd.Context(), g, target)
		},
	}
}

func runDev(ctx context.Context, g *globals, target string) error {
	sc, cat, err := g.scenario(target)
	if err != nil {
		return err
	}
	log, err := newLogger(g.logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := simulator.StartStack(ctx, sc, simulator.StackOptions{Logger: log,
		Catalog: cat.WithOverrides(sc.Models), Metrics: true})
	if err != nil {
		return err
	}
	defer st.Close()

	w := os.Stdout
	fmt.Fprintf(w, "mtastress dev: topology of %s, cluster %s\n\n", sc.Name, sc.Topology.Cluster)
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "  MTA %-12s smtp://%s  (%s, limit %d)  metrics %s\n", n.Name, n.Addr, n.Model, n.Limit, n.MetricsURL)
	}
	fmt.Fprintf(w, "  NATS             %s\n", st.NATS.URL())
	fmt.Fprintf(w, "  MailHog UI       %s  (alerts go to %s)\n", st.MailHog.UIURL(), simulator.AdminAddress)
	fmt.Fprintf(w, "  MailHog SMTP     %s\n", st.MailHog.SMTPAddr())
	fmt.Fprintf(w, "  next-hop sink    %s\n", st.Sink.Addr())
	fmt.Fprintf(w, "\nrecipients: user1..user%d@%s; press Ctrl-C to stop\n", simulator.ValidUsers, simulator.LocalDomain)
	<-ctx.Done()
	fmt.Fprintln(w, "stopping")
	return nil
}
