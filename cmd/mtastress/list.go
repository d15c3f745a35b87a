package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mtastress/mtastress/scenarios"
)

func newScenarios(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the built-in scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			for _, s := range scenarios.Builtins() {
				fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Description)
			}
			return tw.Flush()
		},
	}
}

func newModels(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "models",
		Short: "List the model catalog: each appliance model and its process limit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "model\tprocess limit")
			for _, m := range cat.Models {
				fmt.Fprintf(tw, "%s\t%d\n", m.Name, m.ProcessLimit)
			}
			return tw.Flush()
		},
	}
}
