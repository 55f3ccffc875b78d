package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	// identityEnv is DBARCHIVE_IDENTITY, taken out of the environment
	// before anything runs (takeIdentityEnv).
	identityEnv string
}

func newRootCommand() (*cobra.Command, *globals) {
	g := &globals{stderr: os.Stderr, stdout: os.Stdout}
	root := &cobra.Command{
		Use:           "dbarchive",
		Short:         "Back databases up into object storage, and restore them verified",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.takeIdentityEnv()
			warnings, err := applyEnv(cmd)
			if err != nil {
				return err
			}
			if err := g.setup(); err != nil {
				return err
			}
			for _, w := range warnings {
				g.log.Warn(w)
			}
			return nil
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
	return root, g
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

// sharedFlags mean the same in every command, so one variable serves all:
// DBARCHIVE_REPO, DBARCHIVE_LOG_FORMAT, DBARCHIVE_LOG_LEVEL.
var sharedFlags = map[string]bool{"repo": true, "log-format": true, "log-level": true}

// envName is the variable that sets a flag of a command: DBARCHIVE_<FLAG>
// for the shared flags, DBARCHIVE_<COMMAND>_<FLAG> for the others (upper
// case, dashes as underscores). A command's own flags are scoped because the
// same name means different things in different commands: backup's
// --output is a result format, restore's a file to write, and backup's
// --password-file is the source's password, restore's the target's.
func envName(cmd, flag string) string {
	if sharedFlags[flag] {
		return envUpper(flag)
	}
	return envUpper(cmd + "-" + flag)
}

func envUpper(s string) string {
	return "DBARCHIVE_" + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// applyEnv fills every flag the command line left unset from its variable
// (envName), so a Job or a CI script can configure dbarchive without a
// command line. It returns a warning for each unscoped DBARCHIVE_<FLAG>
// that names one of the command's own flags: such a variable is not read.
func applyEnv(cmd *cobra.Command) (warnings []string, err error) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		name := envName(cmd.Name(), f.Name)
		if unscoped := envUpper(f.Name); unscoped != name {
			if _, ok := os.LookupEnv(unscoped); ok {
				warnings = append(warnings, fmt.Sprintf("%s is not read: --%s of %s is set by %s", unscoped, f.Name, cmd.Name(), name))
			}
		}
		if f.Changed {
			return
		}
		if v, ok := os.LookupEnv(name); ok && v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = usagef("%s=%q: %v", name, v, serr)
				return
			}
			f.Changed = true
		}
	})
	return warnings, err
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

// openRepo opens an existing repo: list, restore, verify and prune must
// not create one where a mistyped path points.
func openRepo(ctx context.Context, raw string) (*drivers.Bucket, string, error) {
	return openRepoWith(ctx, raw, false)
}

// createRepo opens a repo for a backup, creating an fs repo's directory.
func createRepo(ctx context.Context, raw string) (*drivers.Bucket, string, error) {
	return openRepoWith(ctx, raw, true)
}

// openRepoWith parses a repo URL and opens its bucket. A setting that
// cannot work (a repo path that is a file, an endpoint with credentials) is
// a usage error.
func openRepoWith(ctx context.Context, raw string, create bool) (*drivers.Bucket, string, error) {
	cfg, prefix, err := repourl.Parse(raw, os.Getenv)
	if err != nil {
		return nil, "", &usageError{err}
	}
	if cfg.Type == "fs" && !create {
		cfg.CreateBucket = false
		if _, err := os.Stat(cfg.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, "", usagef("repo %s does not exist (only backup creates a repo)", raw)
		}
	}
	b, err := drivers.Open(ctx, cfg)
	var ce *drivers.ConfigError
	if errors.As(err, &ce) {
		return nil, "", &usageError{err}
	}
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
