package conformance_test

import (
	"os"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

func TestFS(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Config: func(t *testing.T) drivers.Config {
			return drivers.Config{Name: "fs-conformance", Type: "fs", Path: t.TempDir(), ListPageSize: conformance.ListPageSize}
		},
		// An fs repo cannot be opened on a missing directory (a config
		// error, so a mistyped mount path never fills the pod's own disk);
		// the directory vanishing under an open repo (a volume unmounted,
		// the directory removed) is what "missing bucket" means here.
		Missing: func(t *testing.T, cfg drivers.Config) (drivers.Config, func()) {
			return cfg, func() {
				if err := os.RemoveAll(cfg.Path); err != nil {
					t.Fatal(err)
				}
			}
		},
		Witness: fsWitness,
		NotApplicable: map[string]string{
			"BadCredentials":          "an fs repo has no credentials; file permissions are the operating system's, and the tests run as root, which bypasses them",
			"ResetMidRangedRead":      "there is no connection to reset; the portable layer's resumption of a broken body is tested in package drivers (TestReaderResumesAfterReset)",
			"Unavailable503IsRetried": "there is no service to answer 503; retries by class are tested in package drivers (TestEveryCallIsRetried)",
			"EndpointStopsAnswering":  "there is no endpoint; a hung local disk blocks in the kernel, where no timeout of ours reaches (the body watchdog is tested in package drivers, TestReaderIdleWatchdog)",
		},
	})
}
