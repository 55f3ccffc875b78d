// Package drivers is the storage layer application code uses: the portable
// *Bucket type, the error classes callers branch on, the typed repo
// configuration, and the table that maps a repo type to its driver.
//
// The layering follows gocloud.dev's blob over blob/driver and restic's
// retry backend: each repo type is a package drivers/<type> that implements
// the small interface of package drivers/driver, one SDK call per method,
// and maps its SDK's errors to a Code once. *Bucket wraps that driver and
// owns, once for every driver, what must not be copied into five places:
// argument validation against the driver's Limits, per-request timeouts
// (Config.NewTransport, shared by the HTTP drivers, plus an idle watchdog on
// bodies), retries of every call by error class under a time budget
// (Config.Retry; never Permanent, NotFound or PermissionDenied),
// classification of errors raised while reading a body and resumption of a
// body that breaks off, the detached cleanup context of aborts, and one
// annotation of every error with the operation and key.
//
// Each driver package also owns its names: it registers a Registration with
// its repo type, URL scheme, URL parameters and Secret keys (with the
// environment variables the CLI reads them from). repourl and the job ask
// this table; adding a repo type is one package plus one line in
// drivers/all.
//
// Application code (the archiver, the CLI, the job) never imports a concrete
// driver and never sees an SDK type. The contract is checked by the one
// suite in package conformance, which every driver runs against a real
// emulator (through a fault-injecting proxy) or a temporary directory.
package drivers
