package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/version"
)

func (a *app) versionCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version [-o text|json|yaml]",
		Short: "Print prenv's version, commit, commit date, Go version and platform",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return checkOutput(out, "text", "json", "yaml")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			info := version.Get()
			if out == "text" {
				fmt.Fprintln(a.opts.Stdout, info.String())
				return nil
			}
			return printAs(a.opts.Stdout, out, info)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "text", "output format: text, json or yaml")
	return cmd
}
