package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drill"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
)

// drillFlags are verify's --restore flags.
type drillFlags struct {
	restore      bool
	restoreTo    string
	checks       []string
	checksFile   string
	passwordFile string
	output       string
}

func (d *drillFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&d.restore, "restore", false, "restore the backup into a throwaway server and check it (the drill)")
	f.StringVar(&d.restoreTo, "restore-to", "", "with --restore: a postgres:// or mysql:// server URL to restore into (a new database, dropped after) instead of a throwaway server")
	f.StringArrayVar(&d.checks, "check", nil, "with --restore: SQL that must return one row whose first column is true or non-zero (repeatable)")
	f.StringVar(&d.checksFile, "checks-file", "", "with --restore: a YAML or JSON list of {name, sql} checks")
	f.StringVar(&d.passwordFile, "password-file", "", "with --restore-to: file whose first line is the server's password (or DBARCHIVE_TARGET_PASSWORD)")
	f.StringVarP(&d.output, "output", "o", "", "with --restore: table or json (default: table on a terminal, json otherwise)")
}

// check refuses drill flags without --restore and malformed ones, before
// anything is read.
func (d *drillFlags) check(cmd *cobra.Command) error {
	if !d.restore {
		for _, name := range []string{"restore-to", "check", "checks-file", "password-file", "output"} {
			if cmd.Flags().Changed(name) {
				return usagef("--%s needs --restore", name)
			}
		}
		return nil
	}
	if d.output != "" && d.output != "table" && d.output != "json" {
		return usagef("-o %q: want table or json", d.output)
	}
	if d.restoreTo != "" {
		if err := drill.RestoreToURL(d.restoreTo); err != nil {
			return usagef("%v", err)
		}
	}
	_, err := d.allChecks()
	return err
}

// allChecks is the --check flags (named by their SQL) and the checks file.
func (d *drillFlags) allChecks() ([]drill.Check, error) {
	var out []drill.Check
	for _, sql := range d.checks {
		if strings.TrimSpace(sql) == "" {
			return nil, usagef("--check: empty SQL")
		}
		out = append(out, drill.Check{Name: sql, SQL: sql})
	}
	if d.checksFile == "" {
		return out, nil
	}
	data, err := os.ReadFile(d.checksFile)
	if err != nil {
		return nil, usagef("--checks-file: %v", err)
	}
	var fromFile []drill.Check
	if err := yaml.UnmarshalStrict(data, &fromFile); err != nil {
		return nil, usagef("--checks-file %s: %v (want a list of {name, sql})", d.checksFile, err)
	}
	for i, c := range fromFile {
		if strings.TrimSpace(c.SQL) == "" {
			return nil, usagef("--checks-file %s: check %d (%q) has no sql", d.checksFile, i+1, c.Name)
		}
		if c.Name == "" {
			fromFile[i].Name = c.SQL
		}
	}
	return append(out, fromFile...), nil
}

// runDrill runs the drill, prints and stores its report, and fails when
// anything failed.
func runDrill(cmd *cobra.Command, g *globals, b *drivers.Bucket, prefix string, m *archiver.Manifest, d *drillFlags, progress *archiver.Progress, ids *archiver.Identities) error {
	ctx := cmd.Context()
	if m.Encryption != nil && ids == nil {
		return usagef("backup %s is encrypted: a drill restores it, which needs one of its identities (--identity-file or DBARCHIVE_IDENTITY)", m.ID)
	}
	checks, err := d.allChecks()
	if err != nil {
		return err
	}
	tables, err := drill.RecordedTables(ctx, b, prefix, m, ids)
	if err != nil {
		return err
	}
	stop := g.showProgress("drill", progress)
	rep, err := drill.Run(ctx, b, m, drill.Options{
		RestoreTo: d.restoreTo,
		Target:    sources.Options{Password: os.Getenv("DBARCHIVE_TARGET_PASSWORD"), PasswordFile: d.passwordFile},
		Tables:    tables,
		Checks:    checks,
		Restore:   archiver.RestoreOptions{Prefix: prefix, Progress: progress, Logger: g.log, Identities: ids},
	})
	stop()
	if rep == nil {
		return err
	}
	if perr := printReport(g, d.output, rep); perr != nil {
		return errors.Join(err, perr)
	}
	if ctx.Err() != nil {
		return err // interrupted: no evidence either way, nothing stored
	}
	data, merr := json.MarshalIndent(rep, "", "  ")
	if merr == nil {
		var key string
		// The store's answer must not be lost to a cancelled command.
		if key, merr = archiver.PutVerifyReport(ctx, b, prefix, m.ID, rep.EndTime, data); merr == nil {
			g.log.Info("drill report stored", "key", key)
		}
	}
	return errors.Join(err, merr)
}

// printReport writes the report as a table on a terminal, JSON otherwise.
func printReport(g *globals, output string, rep *drill.Report) error {
	if output == "" {
		output = "json"
		if f, ok := g.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			output = "table"
		}
	}
	if output == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	server := rep.Server.Type + " " + rep.Server.Version
	if rep.Server.Throwaway {
		server += " (throwaway)"
	}
	fmt.Fprintf(w, "backup\t%s\nserver\t%s\ndownload\t%.1fs\nrestore\t%.1fs\ntables\t%d\nrows\t%d\n\n", rep.BackupID, server, rep.DownloadSeconds, rep.RestoreSeconds, rep.Tables, rep.Rows)
	fmt.Fprintln(w, "CHECK\tRESULT\tDETAIL")
	for _, c := range rep.Checks {
		result := "ok"
		if !c.Passed {
			result = "FAILED"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, result, c.Detail)
	}
	return w.Flush()
}
