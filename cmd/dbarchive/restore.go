package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
)

func newRestoreCommand(g *globals) *cobra.Command {
	var (
		repo, backupID, target, output, passwordFile string
		createDB, force, overwrite                   bool
		sets                                         setFlags
		keys                                         identityFlags
	)
	cmd := &cobra.Command{
		Use:   "restore [--repo URL] [--backup ID|latest|before:TIME] (--target URL | --output FILE|-)",
		Short: "Restore a backup into a database, a file or stdout, verifying it on the way",
		Long: `Reads the backup with parallel ranged reads, checks its sha256 and size, and
feeds the decompressed stream to the target database's restore tool (in a single
transaction where the tool allows it), to a file, or to stdout. A damaged backup
stops the restore before the tool sees the end of its input.

A target database that already holds tables is refused unless --overwrite is
given: PostgreSQL archives (custom, tar) then drop and remake each object they
hold inside the one transaction, a plain dump fails on the first object that
exists, and a MariaDB dump replaces the tables it holds (DROP TABLE IF EXISTS).
Tables the backup does not hold stay.

--backup before:2026-11-29T03:00:00Z takes the newest backup that finished at
or before that time.

The target password comes from DBARCHIVE_TARGET_PASSWORD or --password-file.

An encrypted backup needs one of its identities: --identity-file FILE (what
age-keygen wrote, or an ssh private key) or DBARCHIVE_IDENTITY (the key's text).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (target == "") == (output == "") {
				return usagef("give exactly one of --target and --output")
			}
			if err := checkBackupID(backupID); err != nil {
				return err
			}
			if output != "" && output != "-" && !force {
				if _, err := os.Lstat(output); err == nil {
					return usagef("--output %s exists; give --force to replace it", output)
				}
			}
			ids, err := keys.load(g)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			b, prefix, m, err := openBackup(ctx, repo, backupID, &sets)
			if err != nil {
				return err
			}
			defer b.Close()
			// Before the target is touched: nothing can be restored.
			if m.Encryption != nil && ids == nil {
				return needIdentity(m)
			}
			var sink func(io.Reader) error
			switch {
			case target != "":
				sink, err = targetSink(cmd, m, target, passwordFile, createDB, overwrite)
			case output == "-":
				sink = func(r io.Reader) error { _, err := io.Copy(g.stdout, r); return err }
			default:
				sink = fileSink(output, force)
			}
			if err != nil {
				return err
			}
			progress := new(archiver.Progress)
			stop := g.showProgress("restore", progress)
			err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{Prefix: prefix, Progress: progress, Logger: g.log, Identities: ids}, sink)
			stop()
			if err != nil {
				return err
			}
			g.log.Info("restore finished", "backup", m.ID, "bytes", progress.SourceBytes.Load())
			return nil
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&backupID, "backup", "latest", "backup id, latest, or before:<RFC 3339 time>")
	cmd.Flags().StringVar(&target, "target", "", "database URL to restore into (same kinds as backup --source)")
	cmd.Flags().StringVar(&output, "output", "", "file to write the dump to, or - for stdout")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file whose first line is the target password")
	cmd.Flags().BoolVar(&createDB, "create-db", false, "create the target database first")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "restore into a target database that already holds tables (see above for what each type does)")
	sets.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing --output file")
	keys.register(cmd)
	return cmd
}

// openBackup opens the repo and finds one backup in it ("latest" or an id).
// The caller closes the bucket.
func openBackup(ctx context.Context, repo, backupID string, sets *setFlags) (*drivers.Bucket, string, *archiver.Manifest, error) {
	b, prefix, err := openRepo(ctx, repo)
	if err != nil {
		return nil, "", nil, err
	}
	m, err := sets.resolve(ctx, b, prefix, backupID)
	if err != nil {
		b.Close()
		return nil, "", nil, err
	}
	return b, prefix, m, nil
}

// targetSink opens the target as a source of the same type as the backup
// and returns its restore as the sink.
func targetSink(cmd *cobra.Command, m *archiver.Manifest, target, passwordFile string, createDB, overwrite bool) (func(io.Reader) error, error) {
	opts := sources.Options{
		Password:       os.Getenv("DBARCHIVE_TARGET_PASSWORD"),
		PasswordFile:   passwordFile,
		CreateDatabase: createDB,
		Overwrite:      overwrite,
	}
	// The recorded format is the dump tool's (pg_restore's); an exec:
	// command takes the stream as it is.
	if !strings.HasPrefix(strings.ToLower(target), "exec:") {
		opts.Format = m.Source.Format
	}
	t, err := sources.Open(target, opts)
	if err != nil {
		return nil, &usageError{withPasswordHint(err, "DBARCHIVE_TARGET_PASSWORD")}
	}
	if t.Type() != m.Source.Type && t.Type() != "exec" {
		return nil, usagef("backup %s holds a %s dump; target %s is %s", m.ID, m.Source.Type, t.Describe(), t.Type())
	}
	r, ok := t.(sources.Restorer)
	if !ok {
		return nil, usagef("target %s (%s) cannot be restored into; use --output", t.Describe(), t.Type())
	}
	if err := r.CheckRestore(cmd.Context()); err != nil {
		if _, ok := errors.AsType[*sources.TargetNotEmptyError](err); ok {
			return nil, fmt.Errorf("%w (--overwrite)", err)
		}
		return nil, err
	}
	return func(in io.Reader) error { return r.Restore(cmd.Context(), in) }, nil
}

// fileSink writes to a temporary file beside path and moves it into place
// only when the whole stream verified, so a failed restore never leaves a
// plausible-looking dump file. Without force the move is a link, which
// fails rather than replace a file that appeared meanwhile.
func fileSink(path string, force bool) func(io.Reader) error {
	return func(r io.Reader) (err error) {
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}()
		if _, err = io.Copy(f, r); err != nil {
			return err
		}
		if err = f.Sync(); err != nil {
			return err
		}
		if err = f.Close(); err != nil {
			return err
		}
		if force {
			err = os.Rename(f.Name(), path)
		} else if err = os.Link(f.Name(), path); err == nil {
			err = os.Remove(f.Name())
		}
		if err != nil {
			return fmt.Errorf("move restored file into place: %w", err)
		}
		return nil
	}
}

func newVerifyCommand(g *globals) *cobra.Command {
	var repo, backupID string
	var sets setFlags
	var d drillFlags
	var keys identityFlags
	cmd := &cobra.Command{
		Use:   "verify [--repo URL] [--backup ID|latest|before:TIME] [--restore [--restore-to URL] [--check SQL]... [--checks-file F] [-o table|json]]",
		Short: "Read a backup in full and check its checksums and sizes; with --restore, prove it restores",
		Long: `Without --restore: reads the whole backup and checks every sha256 and size.

With --restore (the drill): after that integrity pass, restores the backup into
a throwaway server (PostgreSQL: initdb into a temporary directory; MariaDB:
mariadb-install-db), listening on a Unix socket only, of a major no older than
the one the dump came from; or, with --restore-to, into a new database on an
existing server. Then it checks every table the backup recorded is there with
as many rows, and runs each --check (SQL returning one row whose first column
is true or non-zero). The server, its directory and the database are removed
on success, failure, SIGINT and SIGTERM.

The report (a table on a terminal, JSON otherwise or with -o json) holds the
backup id, the download and restore times, the tables and rows checked, each
check's outcome and the server version; it is also stored in the repo as
<prefix>/<id>/verify/<time>.json, and prune removes it with the backup. Exit 1
when anything failed, naming it.

An encrypted backup's content is checked only with one of its identities
(--identity-file or DBARCHIVE_IDENTITY); without one, verify checks the stored
(encrypted) bytes against their sha256 and sizes and says that the content was
not checked, and verify --restore refuses.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkBackupID(backupID); err != nil {
				return err
			}
			if err := d.check(cmd); err != nil {
				return err
			}
			ids, err := keys.load(g)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			b, prefix, m, err := openBackup(ctx, repo, backupID, &sets)
			if err != nil {
				return err
			}
			defer b.Close()
			progress := new(archiver.Progress)
			if d.restore {
				return runDrill(cmd, g, b, prefix, m, &d, progress, ids)
			}
			stop := g.showProgress("verify", progress)
			opts := archiver.RestoreOptions{Prefix: prefix, Progress: progress, Logger: g.log, Identities: ids}
			storedOnly := m.Encryption != nil && ids == nil
			if storedOnly {
				err = archiver.VerifyStored(ctx, b, m, opts)
			} else {
				err = archiver.Verify(ctx, b, m, opts)
			}
			stop()
			if err != nil {
				return err
			}
			if storedOnly {
				_, err = fmt.Fprintf(g.stdout, "%s\tok (stored bytes only)\t%d bytes stored, sha256 of every part and of the object verified; content NOT checked: the backup is encrypted and no identity was given\n", m.ID, m.StoredSize)
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "%s\tok\t%d bytes stored, %d bytes uncompressed, sha256 verified\n", m.ID, m.StoredSize, m.UncompressedSize)
			return err
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&backupID, "backup", "latest", "backup id, latest, or before:<RFC 3339 time>")
	sets.register(cmd)
	d.register(cmd)
	keys.register(cmd)
	return cmd
}

// checkBackupID refuses a --backup that is not a selector (latest, an id,
// before:TIME) before it becomes part of an object key (../x).
func checkBackupID(id string) error {
	if err := archiver.CheckSelector(id); err != nil {
		return usagef("--backup: %v", err)
	}
	return nil
}
