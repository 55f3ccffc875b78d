package main

import (
	"crypto/sha256"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// The repo URLs below are the ones the README documents for each driver,
// with the emulator's endpoint; credentials go into the documented
// environment variables (package repourl), never into the URL.

func s3URL(c *cli, cfg drivers.Config, prefix string) string {
	c.setenv("AWS_ACCESS_KEY_ID", cfg.Secrets.Get("AccessKeyId").Reveal())
	c.setenv("AWS_SECRET_ACCESS_KEY", cfg.Secrets.Get("SecretAccessKey").Reveal())
	q := url.Values{"endpoint": {cfg.Endpoint}, "path_style": {"true"}, "region": {cfg.Region}}
	return "s3://" + cfg.Bucket + "/" + prefix + "?" + q.Encode()
}

func ibmcosURL(c *cli, cfg drivers.Config, prefix string) string {
	for key, env := range map[string]string{
		"HmacAccessKeyId":     "CLOUD_OBJECT_STORAGE_HMAC_ACCESS_KEY_ID",
		"HmacSecretAccessKey": "CLOUD_OBJECT_STORAGE_HMAC_SECRET_ACCESS_KEY",
		"ApiKey":              "CLOUD_OBJECT_STORAGE_API_KEY",
		"ServiceInstanceId":   "CLOUD_OBJECT_STORAGE_SERVICE_INSTANCE_ID",
	} {
		if v := cfg.Secrets.Get(key).Reveal(); v != "" {
			c.setenv(env, v)
		}
	}
	q := url.Values{"endpoint": {cfg.Endpoint}, "path_style": {"true"}, "region": {cfg.Region}}
	if cfg.AuthEndpoint != "" {
		q.Set("auth_endpoint", cfg.AuthEndpoint)
	}
	return "ibmcos://" + cfg.Bucket + "/" + prefix + "?" + q.Encode()
}

func gcsURL(cfg drivers.Config, prefix string) string {
	return "gs://" + cfg.Bucket + "/" + prefix + "?" + url.Values{"endpoint": {cfg.Endpoint}}.Encode()
}

func azureURL(c *cli, cfg drivers.Config, prefix string) string {
	c.setenv("AZURE_STORAGE_ACCOUNT", cfg.Secrets.Get("AccountName").Reveal())
	c.setenv("AZURE_STORAGE_KEY", cfg.Secrets.Get("AccountKey").Reveal())
	q := url.Values{"endpoint": {cfg.Endpoint}, "create_bucket": {"true"}}
	return "azblob://" + cfg.Bucket + "/" + prefix + "?" + q.Encode()
}

// TestEveryDriver backs one small PostgreSQL database up into a repo of
// every type, then lists, verifies and restores it from there.
func TestEveryDriver(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_drivers")
	srv.Populate(t, db, 20_000)
	want := srv.Fingerprint(t, db)

	repos := []struct {
		name string
		url  func(t *testing.T, c *cli) string
	}{
		{"fs", func(t *testing.T, c *cli) string { return fileURL(t.TempDir()) }},
		{"s3", func(t *testing.T, c *cli) string { return s3URL(c, emulators.S3(t), "backups/pg") }},
		{"ibmcos hmac", func(t *testing.T, c *cli) string {
			cfg, _ := emulators.IBMCOS(t, emulators.IBMCOSHMAC)
			return ibmcosURL(c, cfg, "backups")
		}},
		{"ibmcos apikey", func(t *testing.T, c *cli) string {
			cfg, stats := emulators.IBMCOS(t, emulators.IBMCOSAPIKey)
			t.Cleanup(func() {
				if stats.TokensIssued() == 0 || stats.Denied() != 0 {
					t.Errorf("IAM: %d tokens issued, %d requests denied (%s); want the API key exchanged and nothing denied", stats.TokensIssued(), stats.Denied(), stats.LastDenial())
				}
			})
			return ibmcosURL(c, cfg, "backups")
		}},
		{"gcs", func(t *testing.T, c *cli) string { return gcsURL(emulators.GCS(t), "backups") }},
		{"azure", func(t *testing.T, c *cli) string { return azureURL(c, emulators.Azurite(t), "backups") }},
	}
	for _, repo := range repos {
		t.Run(repo.name, func(t *testing.T) {
			c := newCLI(t)
			u := repo.url(t, c)
			m := c.backup(srv.URL(name), u)
			if m.Source.Database != name {
				t.Errorf("manifest database %q, want %q", m.Source.Database, name)
			}
			c.listed(u, m.ID)
			c.ok("verify", "--repo", u)
			target := srv.Name(t, "cli_drivers_dst")
			c.ok("restore", "--repo", u, "--target", srv.URL(target), "--create-db")
			testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), want)
		})
	}
}

// TestFaultyUploadsAreRetried runs a backup against an S3 emulator that
// answers some part uploads with 500 and resets the connection of others:
// the parts are retried and the backup is whole.
func TestFaultyUploadsAreRetried(t *testing.T) {
	faults := new(emulators.Faults)
	faults.Fail500(2)
	faults.Reset(2)
	cfg := emulators.S3WithFaults(t, faults)
	c := newCLI(t)
	u := s3URL(c, cfg, "flaky")
	const size = "96MiB"
	m := c.backup(gen("-size "+size), u, "--part-size", "5MiB")
	n500, resets := faults.Injected()
	if n500 != 2 || resets != 2 {
		t.Fatalf("injected %d 500s and %d resets, want 2 and 2 (backup of %d parts)", n500, resets, m.PartCount)
	}
	if m.PartCount < 3 {
		t.Errorf("backup has %d parts; want several, so retries and other parts overlap", m.PartCount)
	}
	c.listed(u, m.ID)
	c.ok("verify", "--repo", u)

	// The restored stream is exactly what the source wrote.
	out := filepath.Join(t.TempDir(), "restored")
	c.ok("restore", "--repo", u, "--output", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := runGen(t, "-size", size)
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("restored %d bytes that differ from the %d the source wrote", len(got), len(want))
	}
	if strings.Count(c.run("list", "--repo", u).stdout, "\n") != 2 {
		t.Errorf("list table should hold a header and one backup")
	}
}

// runGen returns testgen's output for flags.
func runGen(t *testing.T, flags ...string) []byte {
	t.Helper()
	out, err := execCommand(testgenBin, flags...).Output()
	if err != nil {
		t.Fatalf("testgen: %v", err)
	}
	return out
}
