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
		RunE: func(cmd *cobra.Command, args []string) error {
			info := version.Get()
			if out == "text" {
				fmt.Fprintln(a.opts.Stdout, info.String())
				return nil
			}
			return printAs(a.opts.Stdout, out, info)
		},
	}
	outputFlag(cmd, &out)
	return cmd
}
