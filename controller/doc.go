// Package controller is the DatabaseBackup operator's reconciler: it turns a
// DatabaseBackup into the Kubernetes objects that run backups — a CronJob for
// the scheduled trigger, one Job per manual trigger time, and per namespace
// the ServiceAccount, Role and RoleBinding those Jobs run as — and reports
// in status whether the spec can be acted on.
//
// It only writes Kubernetes objects. It must not touch object storage or a
// database (the job binary does that), must not read a Secret's values except
// to check that a named key exists, and must never copy a secret value into
// an object it creates: credentials reach the pod by secretKeyRef or a
// mounted Secret volume.
//
// Files by concern: reconciler.go (the loop and its wiring), validate.go
// (what makes a spec actionable), podtemplate.go (the contract with the job),
// cronjob.go, manualjob.go, jobrbac.go, status.go (conditions, observing
// Jobs) and metrics.go.
package controller
