package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
)

func newListCommand(g *globals) *cobra.Command {
	var repo, output, since, until string
	cmd := &cobra.Command{
		Use:   "list [--repo URL] [--since TIME] [--until TIME] [-o table|json]",
		Short: "List the backups in a repo, oldest first, with the set each belongs to",
		Long: `Lists every backup whose manifest reads, oldest first. A backup's set is its
source type, database and --name: prune keeps backups per set, and
--backup latest picks the newest of one set. A backup whose manifest cannot be
read is skipped here with a warning (restore and verify with --backup latest
refuse to guess past it).

--since and --until keep the backups that finished in that range (both ends
included); each takes an RFC 3339 time or a duration before now (24h, 90m).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("-o %q: want table or json", output)
			}
			now := time.Now()
			from, err := parseTimeFlag("--since", since, now)
			if err != nil {
				return err
			}
			to, err := parseTimeFlag("--until", until, now)
			if err != nil {
				return err
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
			backups = slices.DeleteFunc(backups, func(m *archiver.Manifest) bool {
				return (!from.IsZero() && m.EndTime.Before(from)) || (!to.IsZero() && m.EndTime.After(to))
			})
			if output == "json" {
				if backups == nil {
					backups = []*archiver.Manifest{}
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(backups)
			}
			// SOURCE, DATABASE and NAME together are the backup's set:
			// retention and latest work within one.
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME\tSOURCE\tDATABASE\tNAME\tSTORED\tRATIO\tENCRYPTED")
			for _, m := range backups {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\n", m.ID, m.EndTime.Local().Format(time.DateTime),
					m.Source.Type, orDash(m.Source.Database), orDash(m.Name), humanize.IBytes(uint64(m.StoredSize)), m.Ratio(), encryptedColumn(m))
			}
			return w.Flush()
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&since, "since", "", "only backups that finished at or after this RFC 3339 time, or this long ago (24h)")
	cmd.Flags().StringVar(&until, "until", "", "only backups that finished at or before this RFC 3339 time, or this long ago")
	return cmd
}

// parseTimeFlag reads an RFC 3339 time or a duration before now; "" is the
// zero time (no bound).
func parseTimeFlag(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s %q: want an RFC 3339 time (2026-11-29T03:00:00Z) or a duration before now (24h)", flag, v)
}

// encryptedColumn says whether a backup is encrypted, and to how many keys.
func encryptedColumn(m *archiver.Manifest) string {
	if m.Encryption == nil {
		return "no"
	}
	return fmt.Sprintf("%s, %d recipient(s)", m.Encryption.Scheme, len(m.Encryption.Recipients))
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// setFlags are the --source and --name flags of restore and verify: they
// name the set (source type, database, backup name) that --backup latest is
// taken from. They are needed only when the repo holds more than one set.
type setFlags struct {
	source, name string
	cmd          *cobra.Command
}

func (f *setFlags) register(cmd *cobra.Command) {
	f.cmd = cmd
	cmd.Flags().StringVar(&f.source, "source", "", "with --backup latest: the source URL the backups were made from (its type and database name the set)")
	cmd.Flags().StringVar(&f.name, "name", "", "with --backup latest: the --name the backups were made with (give --name '' for unnamed ones)")
}

// filter turns the flags into the archiver's set filter. The source URL is
// only parsed, never connected to.
func (f *setFlags) filter() (archiver.SetFilter, error) {
	sf := archiver.SetFilter{Name: f.name, HasName: f.cmd.Flags().Changed("name")}
	if f.source != "" {
		src, err := sources.Open(f.source, sources.Options{})
		if err != nil {
			return sf, usagef("--source: %v", err)
		}
		sf.Type, sf.Database = src.Type(), src.Database()
	}
	return sf, nil
}

// resolve finds the backup --backup names ("latest" within the set the
// flags name, or an id).
func (f *setFlags) resolve(ctx context.Context, b *drivers.Bucket, prefix, backupID string) (*archiver.Manifest, error) {
	sf, err := f.filter()
	if err != nil {
		return nil, err
	}
	m, err := archiver.Resolve(ctx, b, prefix, backupID, sf)
	if errors.Is(err, archiver.ErrAmbiguousSet) {
		return nil, &usageError{fmt.Errorf("%w; name the set with --source (and --name), or give --backup ID", err)}
	}
	return m, err
}
