package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/job"
)

func newJobCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "job",
		Short: "Run the backup a DatabaseBackup asks for (inside the Job the operator creates)",
		Long: `Reads BACKUP_RESOURCE_NAME and NAMESPACE, gets the DatabaseBackup, backs its
source up into the repo named by BACKUP_REPO, applies its retention, and writes
the outcome into status.conditions (Succeeded: BackupSucceeded or BackupFailed).
Exits non-zero on failure so the Job's backoff applies.`,
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
			return r.Run(cmd.Context())
		},
	}
}
