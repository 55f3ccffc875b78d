package conformance_test

import (
	"context"
	"testing"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

// openWithPageSize opens cfg with the suite's page size and closes it with t.
func openWithPageSize(t testing.TB, cfg drivers.Config) *drivers.Bucket {
	t.Helper()
	cfg.ListPageSize = conformance.ListPageSize
	b, err := drivers.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s repo: %v", cfg.Type, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// s3Harness runs the suite on an S3-protocol emulator behind the fault
// proxy; every subtest shares its bucket.
func s3Harness(cfg drivers.Config, proxy *emulators.Proxy, badCredentials func(drivers.Config) drivers.Config, w func(*testing.T, drivers.Config) conformance.Witness) conformance.Harness {
	cfg.ListPageSize = conformance.ListPageSize
	h := conformance.Harness{
		Config: func(*testing.T) drivers.Config { return cfg },
		Proxy:  proxy,
		Missing: func(_ *testing.T, cfg drivers.Config) (drivers.Config, func()) {
			cfg.Bucket += "-missing"
			cfg.CreateBucket = false
			return cfg, nil
		},
		BadCredentials: func(_ *testing.T, cfg drivers.Config) drivers.Config { return badCredentials(cfg) },
		Witness:        w,
	}
	if w == nil {
		h.NotApplicable = map[string]string{"SecondClient": "gocloud.dev has no driver that signs with IBM IAM tokens; the HMAC run checks the same store and layout with s3blob"}
	}
	return h
}

func TestS3(t *testing.T) {
	cfg, proxy := emulators.WithProxy(t, emulators.S3(t))
	conformance.Run(t, s3Harness(cfg, proxy, func(cfg drivers.Config) drivers.Config {
		cfg.Secrets = drivers.SecretsFromStrings(map[string]string{"AccessKeyId": "AKIASOMEONEELSE00000", "SecretAccessKey": "wrong"})
		return cfg
	}, s3Witness("AccessKeyId", "SecretAccessKey")))
}

// TestS3CreateBucket checks that CreateBucket makes a missing bucket and
// accepts one that exists.
func TestS3CreateBucket(t *testing.T) {
	cfg := emulators.S3(t)
	cfg.Bucket += "-created"
	if _, err := drivers.Open(context.Background(), cfg); err != nil {
		t.Fatalf("open without CreateBucket: %v", err) // opening sends nothing
	}
	cfg.CreateBucket = true
	b := openWithPageSize(t, cfg)
	if _, err := b.List(context.Background(), ""); err != nil {
		t.Fatalf("List in the created bucket: %v", err)
	}
	openWithPageSize(t, cfg) // the bucket exists now: no error
}
