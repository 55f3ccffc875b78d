package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/sources"
)

func newBackupCommand(g *globals) *cobra.Command {
	var (
		source, repo, name, format, partSize, passwordFile, output string
		level, concurrency                                         int
		stallTimeout                                               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "backup --source URL [--repo URL]",
		Short: "Back a database up into a repo",
		Long: `Streams a dump of the source through zstd into a multipart upload to the repo.
The backup exists once its manifest is written; a failed or interrupted backup
leaves nothing that list, restore or retention would take for a backup.

Source URLs: postgres://user@host:port/db?sslmode=…, mysql://user@host:port/db,
http(s)://…, exec:COMMAND LINE. The source password comes from
DBARCHIVE_SOURCE_PASSWORD or --password-file, never from the command line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" {
				return usagef("--source is required")
			}
			size, err := humanize.ParseBytes(partSize)
			if err != nil {
				return usagef("--part-size %q: %v", partSize, err)
			}
			if output != "text" && output != "json" {
				return usagef("-o %q: want text or json", output)
			}
			src, err := sources.Open(source, sources.Options{
				Password:     os.Getenv("DBARCHIVE_SOURCE_PASSWORD"),
				PasswordFile: passwordFile,
				Format:       format,
			})
			if err != nil {
				return &usageError{err}
			}
			ctx := cmd.Context()
			b, prefix, err := openRepo(ctx, repo)
			if err != nil {
				return err
			}
			defer b.Close()
			progress := new(archiver.Progress)
			stopProgress := g.showProgress("backup", progress)
			m, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{
				Prefix:       prefix,
				Name:         name,
				Level:        level,
				PartSize:     int64(size),
				Concurrency:  concurrency,
				StallTimeout: stallTimeout,
				Progress:     progress,
				Logger:       g.log,
				ToolVersion:  version,
			})
			stopProgress()
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(m)
			}
			_, err = fmt.Fprintf(g.stdout, "%s\t%s stored (%s uncompressed, ratio %.2f) in %s\n", m.ID,
				humanize.IBytes(uint64(m.StoredSize)), humanize.IBytes(uint64(m.UncompressedSize)), m.Ratio(), m.Duration().Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "source URL (postgres://, mysql://, http(s)://, exec:)")
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&name, "name", "", "label recorded in the manifest")
	cmd.Flags().IntVar(&level, "level", archiver.DefaultLevel, "zstd compression level, 1 to 22")
	cmd.Flags().StringVar(&partSize, "part-size", humanize.IBytes(archiver.DefaultPartSize), "size of the first upload part; later parts grow as needed")
	cmd.Flags().IntVar(&concurrency, "concurrency", archiver.DefaultConcurrency, "parts uploading at once")
	cmd.Flags().StringVar(&format, "format", "", "dump format where the source has several (postgres: custom, plain, tar)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file whose first line is the source password")
	cmd.Flags().DurationVar(&stallTimeout, "stall-timeout", 0, "abort when the pipeline moves nothing for this long (0: 10m; negative: never)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}
