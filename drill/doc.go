// Package drill proves a backup by restoring it: it starts a throwaway
// database server (PostgreSQL with initdb, MariaDB with
// mariadb-install-db) in a temporary directory, listening on a Unix socket
// only, restores the backup into it through the same path as any restore
// (ranged reads, per-part and whole-stream checks, one transaction), runs
// the checks, and removes the server and its directory whatever happened.
//
// A backup nobody restored is a hope; the drill's report, stored beside
// the backup, is the evidence that it restores, and how long it took.
package drill
