// Package emulators starts the storage backends the conformance suite and the
// archiver's round-trip tests run against: gofakes3 (s3, and ibmcos behind an
// in-process IAM token endpoint), fake-gcs-server, and Azurite. Each starter
// returns a drivers.Config ready for drivers.Open, listens on a loopback port
// only, and registers its shutdown with t.Cleanup. Proxy (WithProxy) is the
// one fault injector: put in front of any of them, it fails requests by
// method and call number, cuts bodies, stalls and resets connections.
//
// It is test support: production code must never import it.
package emulators

import (
	"fmt"
	"os"
	"testing"
)

// Missing reports an emulator that is not installed. Under CI=true the test
// fails, because a CI run that skips a backend proves nothing about it; on a
// developer's machine it skips with the line that installs it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available; install it with: %s", what, install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: emulator tests must run, not skip)")
	}
	t.Skip(msg)
}
