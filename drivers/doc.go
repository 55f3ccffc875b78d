// Package drivers defines the storage contract every repo type implements: the
// Bucket interface, the error classes callers branch on, per-driver limits, the
// typed repo configuration, and the table that maps a repo type to its driver.
//
// Application code (the archiver, the CLI, the job) talks only to this package.
// It never imports a concrete driver and never sees an SDK type: each driver in
// drivers/<type> maps its SDK's errors to a Code once, and registers itself here
// by type name. Retries, logging and pacing belong in callers or wrappers, not in
// the drivers, so that every driver stays a thin, testable translation layer.
//
// The contract is checked by the one suite in package conformance, which every
// driver runs against a real emulator or a temporary directory.
package drivers
