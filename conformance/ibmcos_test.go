package conformance_test

import (
	"context"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/ibmcos"
)

func TestIBMCOS(t *testing.T) {
	// The BadCredentials behaviour is refused on purpose; every other
	// request must pass the emulator's checks.
	const refusedOnPurpose = 5
	t.Run("HMAC", func(t *testing.T) {
		base, stats := emulators.IBMCOS(t, emulators.IBMCOSHMAC)
		cfg, proxy := emulators.WithProxy(t, base)
		conformance.Run(t, s3Harness(cfg, proxy, func(cfg drivers.Config) drivers.Config {
			cfg.Secrets = drivers.SecretsFromStrings(map[string]string{"HmacAccessKeyId": "someone-else", "HmacSecretAccessKey": "x"})
			return cfg
		}, s3Witness("HmacAccessKeyId", "HmacSecretAccessKey")))
		if stats.Denied() != refusedOnPurpose || stats.Authorized() == 0 {
			t.Errorf("HMAC run: %d requests authorized, %d denied (want %d; last: %s)", stats.Authorized(), stats.Denied(), refusedOnPurpose, stats.LastDenial())
		}
	})
	t.Run("APIKey", func(t *testing.T) {
		base, stats := emulators.IBMCOS(t, emulators.IBMCOSAPIKey)
		cfg, proxy := emulators.WithProxy(t, base)
		conformance.Run(t, s3Harness(cfg, proxy, func(cfg drivers.Config) drivers.Config {
			cfg.Secrets = drivers.SecretsFromStrings(map[string]string{"ApiKey": "wrong-key", "ServiceInstanceId": "x"})
			return cfg
		}, nil))
		// Every Bucket gets its own token manager, so one token per opened
		// bucket at most; at least one proves the exchange happened.
		if stats.TokensIssued() == 0 {
			t.Errorf("the IAM token endpoint issued no token (%d requests)", stats.TokenRequests())
		}
		// A wrong API key never gets a token, so no storage request is
		// refused: IAM refuses first.
		if stats.Denied() != 0 || stats.Authorized() == 0 {
			t.Errorf("API key run: %d requests authorized, %d denied (last: %s)", stats.Authorized(), stats.Denied(), stats.LastDenial())
		}
	})
}

// TestIBMCOSWrongCredentials checks that the emulator's checks bite and that
// refusals reach callers as PermissionDenied.
func TestIBMCOSWrongCredentials(t *testing.T) {
	ctx := context.Background()
	t.Run("HMAC", func(t *testing.T) {
		cfg, stats := emulators.IBMCOS(t, emulators.IBMCOSHMAC)
		cfg.Secrets = drivers.SecretsFromStrings(map[string]string{"HmacAccessKeyId": "someone-else", "HmacSecretAccessKey": "x"})
		b := openWithPageSize(t, cfg)
		if _, err := b.Stat(ctx, "any"); drivers.CodeOf(err) != drivers.PermissionDenied {
			t.Fatalf("Stat with another access key = %v (code %v), want PermissionDenied", err, drivers.CodeOf(err))
		}
		if _, err := b.List(ctx, ""); drivers.CodeOf(err) != drivers.PermissionDenied {
			t.Fatalf("List with another access key = %v (code %v), want PermissionDenied", err, drivers.CodeOf(err))
		}
		if stats.Denied() == 0 {
			t.Fatal("the emulator denied nothing")
		}
	})
	t.Run("APIKey", func(t *testing.T) {
		cfg, stats := emulators.IBMCOS(t, emulators.IBMCOSAPIKey)
		cfg.Secrets = drivers.SecretsFromStrings(map[string]string{"ApiKey": "wrong-key", "ServiceInstanceId": "x"})
		b := openWithPageSize(t, cfg)
		_, err := b.List(ctx, "")
		if drivers.CodeOf(err) != drivers.PermissionDenied {
			t.Fatalf("List with a wrong API key = %v (code %v), want PermissionDenied", err, drivers.CodeOf(err))
		}
		if stats.TokenRequests() == 0 || stats.TokensIssued() != 0 {
			t.Fatalf("token endpoint: %d requests, %d tokens issued; want requests and no token", stats.TokenRequests(), stats.TokensIssued())
		}
		if stats.Authorized() != 0 {
			t.Fatalf("%d storage requests passed without a token", stats.Authorized())
		}
	})
}
