package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/job"
)

func newJobCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Run the backup a DatabaseBackup asks for (inside the Job the operator creates)",
		Long: `Reads BACKUP_RESOURCE_NAME and NAMESPACE, gets the DatabaseBackup, backs its
source up into the repo named by BACKUP_REPO, applies its retention, and writes
the outcome into status.conditions (Succeeded: BackupSucceeded or BackupFailed).
Exits 1 on a failure another attempt may fix, so the Job's backoff applies, and
3 on one it cannot (a spec the job refuses, a repo that denies access), which
the Job's podFailurePolicy turns into a failed Job at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := job.EnvFromOS(os.Getenv)
			if err != nil {
				return err
			}
			store, err := job.NewStore()
			if err != nil {
				return err
			}
			r := &job.Runner{Store: store, Env: env, Log: g.log.With("databasebackup", env.Namespace+"/"+env.ResourceName), ToolVersion: version}
			err = r.Run(cmd.Context())
			if code := job.ExitCode(err); code != exitOK && code != exitFailure {
				return &exitCodeError{code: code, err: err}
			}
			return err
		},
	}
	cmd.AddCommand(newJobRestoreCommand(g))
	return cmd
}

func newJobRestoreCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore",
		Short: "Run the restore a DatabaseRestore asks for (inside the Job the operator creates)",
		Long: `Reads RESTORE_RESOURCE_NAME and NAMESPACE, gets the DatabaseRestore (and the
DatabaseBackup it names), resolves spec.backup to one backup and records it in
status.backup, then restores it into spec.target exactly as "dbarchive restore"
does, and writes the outcome into status.conditions (Succeeded:
RestoreSucceeded, RestoreFailed or TargetNotEmpty). The target password comes
from DBARCHIVE_TARGET_PASSWORD. Exit codes as for "dbarchive job".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := job.RestoreEnvFromOS(os.Getenv)
			if err != nil {
				return err
			}
			store, err := job.NewRestoreStore(nil)
			if err != nil {
				return err
			}
			r := &job.RestoreRunner{Store: store, Env: env, Log: g.log.With("databaserestore", env.Namespace+"/"+env.ResourceName)}
			err = r.Run(cmd.Context())
			if code := job.ExitCode(err); code != exitOK && code != exitFailure {
				return &exitCodeError{code: code, err: err}
			}
			return err
		},
	}
}
