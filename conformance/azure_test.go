package conformance_test

import (
	"encoding/base64"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

// TestAzure runs the suite against one Azurite process behind the fault
// proxy, with a fresh container per subtest so that no subtest sees
// another's leftovers.
func TestAzure(t *testing.T) {
	base, proxy := emulators.WithProxy(t, emulators.Azurite(t))
	base.Name = "azure-conformance"
	base.ListPageSize = conformance.ListPageSize
	conformance.Run(t, conformance.Harness{
		Config: func(*testing.T) drivers.Config {
			cfg := base
			cfg.Bucket = emulators.NewContainerName()
			return cfg
		},
		Proxy:   proxy,
		Witness: azureWitness,
		Missing: func(_ *testing.T, cfg drivers.Config) (drivers.Config, func()) {
			cfg.CreateBucket = false
			return cfg, nil
		},
		// Azurite checks shared-key signatures: a well-formed key of the
		// wrong value is refused with 403 AuthenticationFailed.
		BadCredentials: func(_ *testing.T, cfg drivers.Config) drivers.Config {
			cfg.Secrets = drivers.SecretsFromStrings(map[string]string{
				"AccountName": emulators.AzuriteAccount,
				"AccountKey":  base64.StdEncoding.EncodeToString([]byte("not the account key of devstoreaccount1")),
			})
			return cfg
		},
	})
}
