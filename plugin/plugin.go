// Package plugin is the kubectl plugin: `kubectl dbarchive backup NAME`
// asks the operator for a backup now and follows it to its outcome,
// `kubectl dbarchive status` shows each DatabaseBackup's newest backup
// against its RPO, its last drill and its last failure. It works through
// the API server with the user's kubeconfig and never touches a repo or a
// database itself.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// AnnotationRPO on a DatabaseBackup is its recovery point objective: the
// newest successful backup must be younger than this (a Go duration, e.g.
// 26h). status shows each resource against it.
const AnnotationRPO = "dbarchive.io/rpo"

// UsageError is a mistake on the command line (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error { return &UsageError{fmt.Errorf(format, args...)} }

// Options are the plugin's outputs and clock.
type Options struct {
	Stdout, Stderr io.Writer
	Now            func() time.Time
	// Poll is how often backup re-reads the resource while it waits.
	Poll time.Duration
}

type flags struct {
	kubeconfig, context, namespace, output string
	allNamespaces                          bool
}

// NewCommand is the plugin's root command, named as kubectl shows it.
func NewCommand(o Options) *cobra.Command {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	f := &flags{}
	root := &cobra.Command{
		Use:           "kubectl dbarchive",
		Short:         "Ask for backups and see their state (the dbarchive operator's kubectl plugin)",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file")
	pf.StringVar(&f.context, "context", "", "the kubeconfig context to use")
	pf.StringVarP(&f.namespace, "namespace", "n", "", "the namespace (default: the context's)")
	pf.StringVarP(&f.output, "output", "o", "", "json or yaml (default: a table)")
	root.AddCommand(backupCommand(o, f), statusCommand(o, f))
	return root
}

func (f *flags) checkOutput() error {
	switch f.output {
	case "", "table", "json", "yaml":
		return nil
	}
	return usagef("-o %q: want json or yaml", f.output)
}

// BackupOutcome is what backup prints with -o json|yaml.
type BackupOutcome struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Job       string          `json:"job"`
	Requested string          `json:"requested"`
	Run       *dbv1.BackupRun `json:"run,omitempty"`
}

func backupCommand(o Options, f *flags) *cobra.Command {
	var repo string
	var noWait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "backup NAME [--repo REPO] [--no-wait] [--timeout D]",
		Short: "Back up now: set the DatabaseBackup's manual trigger to the current time and follow the Job",
		Args:  func(_ *cobra.Command, args []string) error { return exactlyOne(args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := connect(f)
			if err != nil {
				return err
			}
			name := args[0]
			db, err := c.getBackup(ctx, c.namespace, name)
			if err != nil {
				return notFound(err, c.namespace, name)
			}
			if repo == "" {
				repo = defaultRepo(db)
			}
			if repo == "" {
				return usagef("DatabaseBackup %s/%s has several repos and no trigger naming one: give --repo", db.Namespace, name)
			}
			if db.Spec.RepoByName(repo) == nil {
				return usagef("--repo %s: DatabaseBackup %s/%s has no such repo (%s)", repo, db.Namespace, name, repoNames(db))
			}
			// Milliseconds: two requests in the same second are two backups.
			at := o.Now().UTC().Truncate(time.Millisecond)
			patch := map[string]any{"spec": map[string]any{"manualTrigger": map[string]any{
				"enabled": true, "time": at.Format("2006-01-02T15:04:05.000Z07:00"), "repo": repo,
			}}}
			if db, err = c.mergePatchBackup(ctx, db.Namespace, name, patch); err != nil {
				return fmt.Errorf("request a backup of %s/%s: %w", db.Namespace, name, err)
			}
			out := BackupOutcome{Namespace: db.Namespace, Name: name, Job: dbv1.ManualJobName(name, at), Requested: at.Format(time.RFC3339Nano)}
			if noWait {
				if f.output != "" && f.output != "table" {
					return printStructured(o.Stdout, f.output, out)
				}
				_, err := fmt.Fprintf(o.Stdout, "backup of %s/%s requested: Job %s\n", db.Namespace, name, out.Job)
				return err
			}
			fmt.Fprintf(o.Stderr, "backup of %s/%s requested: Job %s\n", db.Namespace, name, out.Job)
			run, err := waitForRun(ctx, c, o, db, out.Job, db.Generation, timeout)
			out.Run = run
			if run != nil {
				if f.output != "" && f.output != "table" {
					if perr := printStructured(o.Stdout, f.output, out); perr != nil {
						return perr
					}
				} else if run.Outcome == dbv1.RunSucceeded {
					fmt.Fprintf(o.Stdout, "backup %s of %s/%s succeeded in %s (%s stored)\n", run.ID, db.Namespace, name, durationOf(run.Duration), humanize.IBytes(uint64(run.StoredSize)))
				}
				if run.Outcome != dbv1.RunSucceeded {
					return fmt.Errorf("backup of %s/%s failed (Job %s): %s", db.Namespace, name, out.Job, run.Message)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "the repo to write to (default: the manual trigger's, the schedule's, or the only one)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the backup is requested")
	cmd.Flags().DurationVar(&timeout, "timeout", 6*time.Hour, "how long to wait for the outcome")
	return cmd
}

func exactlyOne(args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one DatabaseBackup name, got %d", len(args))
	}
	return nil
}

func notFound(err error, ns, name string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("DatabaseBackup %s/%s not found", ns, name)
	}
	return fmt.Errorf("get DatabaseBackup %s/%s: %w", ns, name, err)
}

func defaultRepo(db *dbv1.DatabaseBackup) string {
	switch {
	case db.Spec.ManualTrigger != nil && db.Spec.ManualTrigger.Repo != "":
		return db.Spec.ManualTrigger.Repo
	case db.Spec.ScheduledTrigger != nil:
		return db.Spec.ScheduledTrigger.Repo
	case len(db.Spec.Repos) == 1:
		return db.Spec.Repos[0].Name
	}
	return ""
}

func repoNames(db *dbv1.DatabaseBackup) string {
	var names []string
	for _, r := range db.Spec.Repos {
		names = append(names, r.Name)
	}
	return "repos: " + strings.Join(names, ", ")
}

// waitForRun polls the resource until status.history holds the outcome of
// Job job, with a progress line on stderr. It fails early when the
// operator says the spec cannot run (Ready=False for this generation).
func waitForRun(ctx context.Context, c *client, o Options, db *dbv1.DatabaseBackup, job string, gen int64, timeout time.Duration) (*dbv1.BackupRun, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := o.Now()
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	for {
		cur, err := c.getBackup(ctx, db.Namespace, db.Name)
		if err == nil {
			for i := range cur.Status.History {
				if h := cur.Status.History[i]; h.Job == job {
					fmt.Fprintln(o.Stderr)
					return &h, nil
				}
			}
			if r := meta.FindStatusCondition(cur.Status.Conditions, dbv1.ConditionReady); r != nil && r.Status == metav1.ConditionFalse && r.ObservedGeneration >= gen {
				fmt.Fprintln(o.Stderr)
				return nil, fmt.Errorf("DatabaseBackup %s/%s cannot run: %s: %s", db.Namespace, db.Name, r.Reason, r.Message)
			}
			state := "waiting for the operator"
			if s := meta.FindStatusCondition(cur.Status.Conditions, dbv1.ConditionSucceeded); s != nil && s.Reason == dbv1.ReasonBackupRunning {
				state = "running"
			}
			fmt.Fprintf(o.Stderr, "\r%s: %s, %s   ", job, state, o.Now().Sub(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.Stderr)
			return nil, fmt.Errorf("no outcome of Job %s after %v (it may still run: kubectl dbarchive status %s)", job, timeout, db.Name)
		case <-tick.C:
		}
	}
}

// Status is one row of status, and its -o json|yaml form.
type Status struct {
	Namespace        string                 `json:"namespace"`
	Name             string                 `json:"name"`
	LastBackup       *dbv1.LastBackup       `json:"lastBackup,omitempty"`
	Age              string                 `json:"age,omitempty"`
	RPO              string                 `json:"rpo,omitempty"`
	WithinRPO        *bool                  `json:"withinRPO,omitempty"`
	Verified         string                 `json:"verified,omitempty"`
	LastVerification *dbv1.LastVerification `json:"lastVerification,omitempty"`
	LastFailure      *dbv1.BackupFailure    `json:"lastFailure,omitempty"`
}

func statusCommand(o Options, f *flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [NAME] [-A]",
		Short: "Show each DatabaseBackup's newest backup, its age against the RPO, its last drill and its last failure",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("want at most one DatabaseBackup name")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			if f.allNamespaces && len(args) == 1 {
				return usagef("a NAME and -A do not go together")
			}
			ctx := cmd.Context()
			c, err := connect(f)
			if err != nil {
				return err
			}
			var items []dbv1.DatabaseBackup
			if len(args) == 1 {
				db, err := c.getBackup(ctx, c.namespace, args[0])
				if err != nil {
					return notFound(err, c.namespace, args[0])
				}
				items = []dbv1.DatabaseBackup{*db}
			} else {
				ns := c.namespace
				if f.allNamespaces {
					ns = ""
				}
				if items, err = c.listBackups(ctx, ns); err != nil {
					return fmt.Errorf("list DatabaseBackups: %w", err)
				}
			}
			rows := make([]Status, 0, len(items))
			for i := range items {
				row, err := statusOf(&items[i], o.Now())
				if err != nil {
					return err
				}
				rows = append(rows, row)
			}
			if f.output != "" && f.output != "table" {
				return printStructured(o.Stdout, f.output, rows)
			}
			return printStatusTable(o.Stdout, rows)
		},
	}
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "every namespace")
	return cmd
}

func statusOf(db *dbv1.DatabaseBackup, now time.Time) (Status, error) {
	s := Status{Namespace: db.Namespace, Name: db.Name, LastBackup: db.Status.LastBackup,
		LastVerification: db.Status.LastVerification, LastFailure: db.Status.LastFailure}
	var age time.Duration
	if lb := db.Status.LastBackup; lb != nil && lb.FinishedTime != nil {
		age = now.Sub(lb.FinishedTime.Time)
		s.Age = duration.HumanDuration(age)
	}
	if raw := db.Annotations[AnnotationRPO]; raw != "" {
		rpo, err := time.ParseDuration(raw)
		if err != nil || rpo <= 0 {
			return s, fmt.Errorf("DatabaseBackup %s/%s: annotation %s %q is not a duration like 26h", db.Namespace, db.Name, AnnotationRPO, raw)
		}
		s.RPO = raw
		within := s.Age != "" && age <= rpo
		s.WithinRPO = &within
	}
	if v := meta.FindStatusCondition(db.Status.Conditions, dbv1.ConditionVerified); v != nil {
		s.Verified = string(v.Status)
	}
	return s, nil
}

func printStatusTable(w io.Writer, rows []Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tLAST BACKUP\tAGE\tRPO\tVERIFIED\tLAST FAILURE")
	for _, r := range rows {
		id, age, rpo, verified, failure := "-", "-", "-", "-", "-"
		if r.LastBackup != nil {
			id, age = r.LastBackup.ID, r.Age
		}
		if r.RPO != "" {
			rpo = r.RPO + " ok"
			if !*r.WithinRPO {
				rpo = r.RPO + " MISSED"
			}
		}
		if r.Verified != "" {
			verified = r.Verified
			if lv := r.LastVerification; lv != nil && lv.RestoreDuration != nil {
				verified += " (restore " + lv.RestoreDuration.Duration.String() + ")"
			}
		}
		if f := r.LastFailure; f != nil {
			failure = f.Reason + ": " + truncate(f.Message, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, id, age, rpo, verified, failure)
	}
	return tw.Flush()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func printStructured(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

func durationOf(d *metav1.Duration) string {
	if d == nil {
		return "?"
	}
	return d.Duration.String()
}

// IsUsage reports whether err is a usage error (exit 2).
func IsUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}
