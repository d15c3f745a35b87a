package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/simulator"
)

func newPlan(g *globals) *cobra.Command {
	var jsonOut, htmlOut string
	maxBlocked := simulator.DefaultMaxBlocked
	cmd := &cobra.Command{
		Use:   "plan [SCENARIO|FILE]",
		Short: "Find the smallest model and node count that keep stress below once a week",
		Long: `Plan runs the scenario's traffic in virtual time, skipped days included, against every
model of the catalog at 1 to N nodes (N: the scenario's node count), with the MTA's own stress
state machine and the alert service's own rules. It prints, per candidate, the stress episodes
a week, time in stress, the shares of sessions that waited and that were answered 421, the p99
slot wait and the alerts the candidate would trigger; then it recommends the candidate with
the fewest slots in all that has at most one episode a week and at most --max-blocked of its
sessions answered 421.

Exit codes: 0 done (with or without a recommendation); 2 bad input.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := defaultScenario
			if len(args) == 1 {
				target = args[0]
			}
			return runPlan(g, target, jsonOut, htmlOut, maxBlocked)
		},
	}
	cmd.Flags().StringVar(&jsonOut, "json", "", "write the JSON report to `FILE`")
	cmd.Flags().StringVar(&htmlOut, "html", "", "write an HTML page with a chart to `FILE`")
	cmd.Flags().Float64Var(&maxBlocked, "max-blocked", maxBlocked,
		"largest share of sessions answered 421 that a recommendation may have")
	return cmd
}

func runPlan(g *globals, target, jsonOut, htmlOut string, maxBlocked float64) error {
	if maxBlocked < 0 || maxBlocked > 1 {
		return &exitError{exitBadInput,
			fmt.Errorf("--max-blocked %g: give a share between 0 and 1, e.g. 0.001", maxBlocked)}
	}
	sc, cat, err := g.scenario(target)
	if err != nil {
		return err
	}
	if err := checkOutputs(map[string]string{"json": jsonOut, "html": htmlOut}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "planning %s\n", describeRun(sc))
	rep, err := simulator.Plan(sc, simulator.PlanOptions{Catalog: cat, MaxBlocked: maxBlocked})
	if err != nil {
		return err
	}
	rep.WriteText(os.Stdout)
	return writeReports(rep, jsonOut, htmlOut)
}
