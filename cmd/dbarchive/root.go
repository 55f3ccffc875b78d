package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
	"github.com/dbarchive/dbarchive/repourl"
	_ "github.com/dbarchive/dbarchive/sources/all"
)

// globals are the flags every command shares.
type globals struct {
	logFormat string
	logLevel  string
	log       *slog.Logger
	stderr    io.Writer
	stdout    io.Writer
	// interactive is true when stderr is a terminal: progress is drawn as a
	// bar instead of log lines.
	interactive bool
}

func newRootCommand() *cobra.Command {
	g := &globals{stderr: os.Stderr, stdout: os.Stdout}
	root := &cobra.Command{
		Use:           "dbarchive",
		Short:         "Back databases up into object storage, and restore them verified",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return err
			}
			return g.setup()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(
		newBackupCommand(g),
		newRestoreCommand(g),
		newVerifyCommand(g),
		newListCommand(g),
		newPruneCommand(g),
		newVersionCommand(g),
		newJobCommand(g),
	)
	return root
}

func (g *globals) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usagef("--log-format %q: want text or json", g.logFormat)
	}
	slog.SetDefault(g.log)
	if f, ok := g.stderr.(*os.File); ok {
		g.interactive = g.logFormat == "text" && term.IsTerminal(int(f.Fd()))
	}
	return nil
}

// applyEnv fills every flag the command line left unset from DBARCHIVE_<FLAG>
// (upper case, dashes as underscores), so a Job or a CI script can configure
// dbarchive without a command line.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "DBARCHIVE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = usagef("%s=%q: %v", name, v, serr)
				return
			}
			f.Changed = true
		}
	})
	return err
}

// defaultRepo is the repo used when --repo is not given: a directory in the
// user's data home, so that a first backup needs no set-up.
func defaultRepo() string {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".local", "share")
	}
	return "file://" + filepath.Join(base, "dbarchive", "repo")
}

// openRepo parses a repo URL and opens its bucket.
func openRepo(ctx context.Context, raw string) (*drivers.Bucket, string, error) {
	cfg, prefix, err := repourl.Parse(raw, os.Getenv)
	if err != nil {
		return nil, "", &usageError{err}
	}
	b, err := drivers.Open(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	return b, prefix, nil
}

func repoFlag(cmd *cobra.Command, target *string) {
	cmd.Flags().StringVar(target, "repo", defaultRepo(), "repo URL: file:///path, s3://bucket/prefix?endpoint=…&region=…&path_style=true, ibmcos://bucket/prefix?endpoint=…&auth_endpoint=…, gs://bucket/prefix, azblob://container/prefix?endpoint=…")
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(g.stdout, "dbarchive %s\n", version)
			return err
		},
	}
}
