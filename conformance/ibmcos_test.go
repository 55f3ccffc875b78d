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
	t.Run("HMAC", func(t *testing.T) {
		cfg, stats := emulators.IBMCOS(t, emulators.IBMCOSHMAC)
		conformance.Run(t, func(t *testing.T) drivers.Bucket { return openWithPageSize(t, cfg) })
		if stats.Denied() != 0 || stats.Authorized() == 0 {
			t.Errorf("HMAC run: %d requests authorized, %d denied (last: %s)", stats.Authorized(), stats.Denied(), stats.LastDenial())
		}
	})
	t.Run("APIKey", func(t *testing.T) {
		cfg, stats := emulators.IBMCOS(t, emulators.IBMCOSAPIKey)
		conformance.Run(t, func(t *testing.T) drivers.Bucket { return openWithPageSize(t, cfg) })
		// Every Bucket gets its own token manager, so one token per opened
		// bucket at most; at least one proves the exchange happened.
		if stats.TokensIssued() == 0 {
			t.Errorf("the IAM token endpoint issued no token (%d requests)", stats.TokenRequests())
		}
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

// TestIBMCOSFaults checks that a 500 and a connection reset during a part
// upload reach the caller as Transient through the ibmcos driver too.
func TestIBMCOSFaults(t *testing.T) {
	for _, mode := range []string{emulators.IBMCOSHMAC, emulators.IBMCOSAPIKey} {
		t.Run(mode, func(t *testing.T) {
			faults := &emulators.Faults{}
			cfg, _ := emulators.IBMCOSWithFaults(t, mode, faults)
			b := openWithPageSize(t, cfg)
			ctx := context.Background()
			u, err := b.NewUpload(ctx, "faults/object")
			if err != nil {
				t.Fatal(err)
			}
			defer u.Abort(ctx)
			part := make([]byte, conformance.PartSize)
			faults.Fail500(1)
			faults.Reset(1)
			for _, what := range []string{"500", "reset"} {
				err := u.PutPart(ctx, 1, part)
				if drivers.CodeOf(err) != drivers.Transient {
					t.Errorf("PutPart with a %s injected = %v (code %v), want Transient", what, err, drivers.CodeOf(err))
				}
			}
			if n500, resets := faults.Injected(); n500 != 1 || resets != 1 {
				t.Fatalf("Injected() = %d, %d; want 1, 1", n500, resets)
			}
			if err := u.PutPart(ctx, 1, part); err != nil {
				t.Fatalf("PutPart after the faults: %v", err)
			}
			if err := u.Complete(ctx, 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}
