package main

import (
	"encoding/json"
	"errors"
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
		encryption                                                 recipientFlags
	)
	cmd := &cobra.Command{
		Use:   "backup --source URL [--repo URL]",
		Short: "Back a database up into a repo",
		Long: `Streams a dump of the source through zstd into a multipart upload to the repo.
The backup exists once its manifest is written; a failed or interrupted backup
leaves nothing that list, restore or retention would take for a backup.

Source URLs: postgres://user@host:port/db?sslmode=…, mysql://user@host:port/db,
http(s)://…, exec:COMMAND LINE. The source password comes from
DBARCHIVE_SOURCE_PASSWORD or --password-file, never from the command line.

With --recipient, --recipients-file or DBARCHIVE_RECIPIENTS the backup is
encrypted with age to those public keys: the repo then holds data.zst.age,
which only their identities decrypt (age -d -i key.txt data.zst.age | zstd -d).
Lose every identity and nothing can restore the backup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" {
				return usagef("--source is required")
			}
			size, err := checkBackupFlags(partSize, level, concurrency)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("level") {
				level = 0 // the archiver's default setting, not only its level
			}
			if output != "text" && output != "json" {
				return usagef("-o %q: want text or json", output)
			}
			recipients, err := encryption.parse()
			if err != nil {
				return err
			}
			src, err := sources.Open(source, sources.Options{
				Password:     os.Getenv("DBARCHIVE_SOURCE_PASSWORD"),
				PasswordFile: passwordFile,
				Format:       format,
			})
			if err != nil {
				return &usageError{withPasswordHint(err, "DBARCHIVE_SOURCE_PASSWORD")}
			}
			ctx := cmd.Context()
			b, prefix, err := createRepo(ctx, repo)
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
				PartSize:     size,
				Concurrency:  concurrency,
				StallTimeout: stallTimeout,
				Progress:     progress,
				Logger:       g.log,
				ToolVersion:  version,
				Recipients:   recipients,
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
			encrypted := ""
			if m.Encryption != nil {
				encrypted = fmt.Sprintf(", encrypted to %d recipient(s)", len(m.Encryption.Recipients))
			}
			_, err = fmt.Fprintf(g.stdout, "%s\t%s stored (%s uncompressed, ratio %.2f%s) in %s\n", m.ID,
				humanize.IBytes(uint64(m.StoredSize)), humanize.IBytes(uint64(m.UncompressedSize)), m.Ratio(), encrypted, m.Duration().Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "source URL (postgres://, mysql://, http(s)://, exec:)")
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&name, "name", "", "label recorded in the manifest")
	cmd.Flags().IntVar(&level, "level", archiver.DefaultLevel, fmt.Sprintf("zstd compression level, 1 to 22; unset: level %d with a 2^%d-entry hash table and %d-byte minimum matches (tuned on dumps)",
		archiver.DefaultLevel, archiver.DefaultHashLog, archiver.DefaultMinMatch))
	cmd.Flags().StringVar(&partSize, "part-size", humanize.IBytes(archiver.DefaultPartSize), "size of the first upload part; later parts grow as needed")
	cmd.Flags().IntVar(&concurrency, "concurrency", archiver.DefaultConcurrency, "parts uploading at once")
	cmd.Flags().StringVar(&format, "format", "", "dump format where the source has several (postgres: custom, plain, tar)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file whose first line is the source password")
	cmd.Flags().DurationVar(&stallTimeout, "stall-timeout", 0, "abort when the pipeline moves nothing for this long (0: 10m; negative: never)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	encryption.register(cmd)
	return cmd
}

// Bounds of the backup flags. A part is one storage request, so tiny parts
// make a backup of millions of requests; and the pipeline holds
// --concurrency + 1 part buffers, so part size times that is its memory.
const (
	minPartSize     = 64 << 10
	maxPartBuffers  = 4 << 30
	maxLevel        = 22
	maxConcurrency  = 64
	partBuffersHelp = "the backup holds part size × (concurrency + 1) in memory"
)

// checkBackupFlags validates --part-size, --level and --concurrency and
// returns the part size in bytes.
func checkBackupFlags(partSize string, level, concurrency int) (int64, error) {
	size, err := humanize.ParseBytes(partSize)
	if err != nil {
		return 0, usagef("--part-size %q: %v", partSize, err)
	}
	if level < 1 || level > maxLevel {
		return 0, usagef("--level %d: want a zstd level from 1 to %d", level, maxLevel)
	}
	if concurrency < 1 || concurrency > maxConcurrency {
		return 0, usagef("--concurrency %d: want 1 to %d parts uploading at once", concurrency, maxConcurrency)
	}
	if size < minPartSize {
		return 0, usagef("--part-size %s: want at least %s (each part is one storage request)", partSize, humanize.IBytes(minPartSize))
	}
	if need := size * uint64(concurrency+1); size > maxPartBuffers || need > maxPartBuffers {
		return 0, usagef("--part-size %s with --concurrency %d needs %s of part buffers (%s); the limit is %s: lower --part-size or --concurrency",
			partSize, concurrency, humanize.IBytes(need), partBuffersHelp, humanize.IBytes(maxPartBuffers))
	}
	return int64(size), nil
}

// withPasswordHint adds to a refused URL password where the password goes
// instead.
func withPasswordHint(err error, envVar string) error {
	if errors.Is(err, sources.ErrPasswordInURL) {
		return fmt.Errorf("%w: give it in %s or --password-file", err, envVar)
	}
	return err
}
