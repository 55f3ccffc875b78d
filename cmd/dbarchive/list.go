package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/archiver"
)

func newListCommand(g *globals) *cobra.Command {
	var repo, output string
	cmd := &cobra.Command{
		Use:   "list [--repo URL] [-o table|json]",
		Short: "List the backups in a repo, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("-o %q: want table or json", output)
			}
			ctx := cmd.Context()
			b, prefix, err := openRepo(ctx, repo)
			if err != nil {
				return err
			}
			defer b.Close()
			backups, problems, err := archiver.List(ctx, b, prefix)
			if err != nil {
				return err
			}
			for _, p := range problems {
				g.log.Warn("skipped a backup whose manifest cannot be read", "error", p)
			}
			if output == "json" {
				if backups == nil {
					backups = []*archiver.Manifest{}
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(backups)
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME\tSOURCE\tDATABASE\tSTORED\tRATIO")
			for _, m := range backups {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%.2f\n", m.ID, m.EndTime.Local().Format(time.DateTime),
					m.Source.Type, orDash(m.Source.Database), humanize.IBytes(uint64(m.StoredSize)), m.Ratio())
			}
			return w.Flush()
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
