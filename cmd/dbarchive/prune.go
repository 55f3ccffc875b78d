package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/archiver"
)

func newPruneCommand(g *globals) *cobra.Command {
	var (
		repo, keepWithin, grace string
		keepLast                int
		dryRun                  bool
	)
	cmd := &cobra.Command{
		Use:   "prune [--repo URL] (--keep-last N | --keep-within DURATION) [--dry-run]",
		Short: "Delete backups the retention does not keep, and clean up after failed ones",
		Long: `Rules apply to each backup set (source type, database and --name; see list)
on its own: keeps the newest N backups of each set (--keep-last) and those
finished within a duration (--keep-within, e.g. 36h, 14d, 8w); the newest
backup of each set is always kept. Only complete backups count: one whose data
or parts object is missing or has another size than its manifest records is
reported as incomplete, and deleted once older than --grace. Manifests are
deleted before data, so a half-pruned backup is never listed. Also removes
leftovers of backups that never finished and aborts pending uploads, once they
are older than --grace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := archiver.Retention{KeepLast: keepLast, DryRun: dryRun}
			var err error
			if keepWithin != "" {
				if r.KeepWithin, err = parseDuration(keepWithin); err != nil {
					return usagef("--keep-within: %v", err)
				}
			}
			if r.Grace, err = parseDuration(grace); err != nil {
				return usagef("--grace: %v", err)
			}
			if r.Grace == 0 {
				// Retention takes a zero Grace as "the default" (24h); on the
				// command line --grace 0s means no grace at all.
				r.Grace = time.Nanosecond
			}
			if r.KeepLast < 0 {
				return usagef("--keep-last must not be negative")
			}
			if r.KeepLast == 0 && r.KeepWithin == 0 {
				return usagef("give --keep-last or --keep-within")
			}
			ctx := cmd.Context()
			b, prefix, err := openRepo(ctx, repo)
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := archiver.Prune(ctx, b, prefix, r, g.log)
			if res != nil {
				verb := "deleted"
				if dryRun {
					verb = "would delete"
				}
				for _, in := range res.Incomplete {
					fmt.Fprintf(g.stdout, "incomplete\t%s\t%s\t%s\n", in.Manifest.ID, in.Manifest.Set(), in.Reason)
				}
				for _, m := range res.Deleted {
					fmt.Fprintf(g.stdout, "%s\t%s\t%s\n", verb, m.ID, m.Set())
				}
				for _, k := range res.Swept {
					fmt.Fprintf(g.stdout, "%s\tleftover %s\n", verb, k)
				}
				for _, p := range res.Aborted {
					fmt.Fprintf(g.stdout, "%s\tpending upload of %s\n", verb, p.Key)
				}
				fmt.Fprintf(g.stdout, "kept %d backups\n", len(res.Kept))
			}
			return err
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().IntVar(&keepLast, "keep-last", 0, "keep the newest N backups")
	cmd.Flags().StringVar(&keepWithin, "keep-within", "", "keep backups finished within this duration (e.g. 36h, 14d, 8w)")
	cmd.Flags().StringVar(&grace, "grace", "24h", "leave unfinished backups and pending uploads younger than this alone")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be deleted and delete nothing")
	return cmd
}

// parseDuration extends time.ParseDuration with days (d) and weeks (w), the
// units retention is usually spoken in.
func parseDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("%q is not a duration (like 36h, 14d, 8w)", s)
			}
			return time.Duration(v * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (like 36h, 14d, 8w)", s)
	}
	return d, nil
}
