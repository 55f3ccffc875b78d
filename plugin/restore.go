package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// RestoreOutcome is what restore prints with -o json|yaml.
type RestoreOutcome struct {
	Namespace string                      `json:"namespace"`
	Name      string                      `json:"name"`
	Status    *dbv1.DatabaseRestoreStatus `json:"status,omitempty"`
}

func restoreCommand(o Options, f *flags) *cobra.Command {
	var targetDB, backup, repo string
	var overwrite, noWait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restore NAME --target-database DB [--backup ID|latest|before:TIME] [--overwrite] [--no-wait]",
		Short: "Restore a DatabaseBackup's backup into a database of the same server: creates a DatabaseRestore and follows it",
		Long: `Creates a DatabaseRestore from the DatabaseBackup NAME: its repo, Secrets and
source server, restoring into --target-database. Without --overwrite the database
is created for the restore (and dropped again if it fails), so nothing that
exists is touched; with --overwrite it must exist and is restored into (see the
DatabaseRestore's spec.overwrite for what each database type does).`,
		Args: func(_ *cobra.Command, args []string) error { return exactlyOne(args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			if targetDB == "" {
				return usagef("--target-database is required: the database to restore into")
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
			src := db.Spec.Source
			if src == nil || (src.Type != dbv1.SourceTypePostgres && src.Type != dbv1.SourceTypeMySQL) {
				return usagef("DatabaseBackup %s/%s has no postgres or mysql source to restore into; create a DatabaseRestore with its own target", db.Namespace, name)
			}
			if src.Database == targetDB && !overwrite {
				return usagef("--target-database %s is the database the backups are made from; restore into another database, or give --overwrite to restore over it", targetDB)
			}
			dr := &dbv1.DatabaseRestore{
				ObjectMeta: metav1.ObjectMeta{Name: restoreName(name, o.Now()), Namespace: db.Namespace},
				Spec: dbv1.DatabaseRestoreSpec{
					From:   dbv1.RestoreFrom{DatabaseBackup: name, RepoName: repo},
					Backup: backup,
					Target: dbv1.RestoreTarget{Type: src.Type, Host: src.Host, Port: src.Port, Database: targetDB,
						User: src.User, PasswordSecretRef: src.PasswordSecretRef},
					CreateDatabase: !overwrite,
					Overwrite:      overwrite,
				},
			}
			created, err := c.createRestore(ctx, dr)
			if err != nil {
				return fmt.Errorf("create DatabaseRestore %s/%s: %w", dr.Namespace, dr.Name, err)
			}
			out := RestoreOutcome{Namespace: created.Namespace, Name: created.Name}
			fmt.Fprintf(o.Stderr, "DatabaseRestore %s/%s created: %s of %s into database %s\n", created.Namespace, created.Name, orLatest(backup), name, targetDB)
			if noWait {
				if f.output != "" && f.output != "table" {
					return printStructured(o.Stdout, f.output, out)
				}
				_, err := fmt.Fprintf(o.Stdout, "restore %s/%s requested\n", created.Namespace, created.Name)
				return err
			}
			final, err := waitForRestore(ctx, c, o, created, timeout)
			if final == nil {
				return err
			}
			out.Status = &final.Status
			if f.output != "" && f.output != "table" {
				if perr := printStructured(o.Stdout, f.output, out); perr != nil {
					return perr
				}
			}
			cond := meta.FindStatusCondition(final.Status.Conditions, dbv1.ConditionSucceeded)
			if cond.Status != metav1.ConditionTrue {
				return fmt.Errorf("restore %s/%s failed: %s: %s", final.Namespace, final.Name, cond.Reason, cond.Message)
			}
			if f.output == "" || f.output == "table" {
				id := "?"
				if b := final.Status.Backup; b != nil {
					id = b.ID
				}
				fmt.Fprintf(o.Stdout, "backup %s restored into %s in %s (DatabaseRestore %s/%s)\n", id, targetDB, durationOf(final.Status.Duration), final.Namespace, final.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&targetDB, "target-database", "", "the database to restore into, on the DatabaseBackup's server (required)")
	cmd.Flags().StringVar(&backup, "backup", "", "latest (default), a backup id, or before:<RFC 3339 time>")
	cmd.Flags().StringVar(&repo, "repo", "", "the repo to restore from (default: the one of the last backup)")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "restore into an existing database that holds tables instead of a new one")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the DatabaseRestore is created")
	cmd.Flags().DurationVar(&timeout, "timeout", 6*time.Hour, "how long to wait for the outcome")
	return cmd
}

func orLatest(s string) string {
	if s == "" {
		return "latest"
	}
	return s
}

// restoreName is a DatabaseRestore name that says what and when, short
// enough for its Job (<name>-restore) and RBAC names.
func restoreName(backup string, now time.Time) string {
	suffix := "-" + strings.ToLower(now.UTC().Format("20060102t150405"))
	if max := 40 - len(suffix); len(backup) > max {
		backup = strings.TrimRight(backup[:max], "-.")
	}
	return backup + suffix
}

// waitForRestore polls dr until its Succeeded condition is True or False
// for its generation, with a progress line on stderr.
func waitForRestore(ctx context.Context, c *client, o Options, dr *dbv1.DatabaseRestore, timeout time.Duration) (*dbv1.DatabaseRestore, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := o.Now()
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	for {
		cur, err := c.getRestore(ctx, dr.Namespace, dr.Name)
		if err == nil {
			cond := meta.FindStatusCondition(cur.Status.Conditions, dbv1.ConditionSucceeded)
			if cond != nil && cond.Status != metav1.ConditionUnknown && cond.ObservedGeneration >= cur.Generation {
				fmt.Fprintln(o.Stderr)
				return cur, nil
			}
			state := "waiting for the operator"
			if cond != nil {
				state = cond.Reason
			}
			fmt.Fprintf(o.Stderr, "\r%s: %s, %s   ", dr.Name, state, o.Now().Sub(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.Stderr)
			return nil, fmt.Errorf("no outcome of DatabaseRestore %s/%s after %v (it may still run: kubectl get dbr -n %s %s)", dr.Namespace, dr.Name, timeout, dr.Namespace, dr.Name)
		case <-tick.C:
		}
	}
}
