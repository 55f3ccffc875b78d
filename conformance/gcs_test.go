package conformance_test

import (
	"net/http"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

func TestGCS(t *testing.T) {
	cfg, proxy := emulators.WithProxy(t, emulators.GCS(t))
	cfg.ListPageSize = conformance.ListPageSize
	conformance.Run(t, conformance.Harness{
		Config:  func(*testing.T) drivers.Config { return cfg },
		Proxy:   proxy,
		Witness: gcsWitness,
		Missing: func(_ *testing.T, cfg drivers.Config) (drivers.Config, func()) {
			cfg.Bucket += "-missing"
			return cfg, nil
		},
		// fake-gcs-server authenticates nothing, and the driver sends no
		// credentials to a plain-http endpoint: the proxy answers every
		// request as GCS answers a revoked key, 401 with its JSON error.
		BadCredentials: func(_ *testing.T, cfg drivers.Config) drivers.Config {
			proxy.Inject(emulators.Fault{Action: emulators.Status, Status: http.StatusUnauthorized, Times: 1 << 20})
			return cfg
		},
	})
}
