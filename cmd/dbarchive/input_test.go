package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad input is a usage error (exit 2) that names what is wrong, and it is
// refused before anything is read, written or created.
func TestBadInputIsUsageError(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	m := c.backup(gen("-size 64KiB"), repo)
	aFile := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(t.TempDir(), "existing.dump")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "mistyped", "repo")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"level 99", []string{"backup", "--source", gen(""), "--repo", repo, "--level", "99"}, []string{"--level 99", "1 to 22"}},
		{"level 0", []string{"backup", "--source", gen(""), "--repo", repo, "--level", "0"}, []string{"--level 0"}},
		{"concurrency 0", []string{"backup", "--source", gen(""), "--repo", repo, "--concurrency", "0"}, []string{"--concurrency 0"}},
		{"concurrency -1", []string{"backup", "--source", gen(""), "--repo", repo, "--concurrency", "-1"}, []string{"--concurrency -1"}},
		{"part size 1", []string{"backup", "--source", gen(""), "--repo", repo, "--part-size", "1"}, []string{"--part-size 1", "at least 64 KiB"}},
		{"part size beyond the memory bound", []string{"backup", "--source", gen(""), "--repo", repo, "--part-size", "2GiB"}, []string{"--part-size 2GiB", "10 GiB", "part size × (concurrency + 1)", "4.0 GiB"}},
		{"endpoint with credentials", []string{"list", "--repo", "s3://bucket/p?endpoint=http://key:secret@127.0.0.1:9"}, []string{"endpoint"}},
		{"repo path is a file", []string{"list", "--repo", fileURL(aFile)}, []string{"not a directory"}},
		{"backup is a file", []string{"backup", "--source", gen(""), "--repo", fileURL(aFile)}, []string{"a-file"}},
		{"list on a missing repo", []string{"list", "--repo", fileURL(missing)}, []string{"does not exist", missing}},
		{"restore from a missing repo", []string{"restore", "--repo", fileURL(missing), "--output", "-"}, []string{"does not exist"}},
		{"verify on a missing repo", []string{"verify", "--repo", fileURL(missing)}, []string{"does not exist"}},
		{"backup ../x", []string{"restore", "--repo", repo, "--backup", "../x", "--output", "-"}, []string{"--backup", `"../x" is not a backup id`}},
		{"verify ../x", []string{"verify", "--repo", repo, "--backup", "../x"}, []string{"is not a backup id"}},
		{"output exists", []string{"restore", "--repo", repo, "--output", existing}, []string{existing, "--force"}},
		{"password in the source URL", []string{"backup", "--source", "postgres://u:hunter2-pw@127.0.0.1/db", "--repo", repo}, []string{"password", "DBARCHIVE_SOURCE_PASSWORD", "--password-file"}},
		{"password in the target URL", []string{"restore", "--repo", repo, "--target", "postgres://u:hunter2-pw@127.0.0.1/db"}, []string{"password", "DBARCHIVE_TARGET_PASSWORD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.fail(2, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			for _, secret := range []string{"hunter2-pw", "key:secret"} {
				if strings.Contains(r.stderr, secret) {
					t.Errorf("stderr repeats a credential:\n%s", r.stderr)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("list/restore/verify created the mistyped repo directory (%v)", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("the existing --output file was changed to %q", b)
	}
	c.listed(repo, m.ID)

	t.Run("--force replaces the output", func(t *testing.T) {
		c.ok("restore", "--repo", repo, "--output", existing, "--force")
		if fi, err := os.Stat(existing); err != nil || fi.Size() != m.UncompressedSize {
			t.Fatalf("after --force the file is %v (err %v), want the %d-byte dump", fi, err, m.UncompressedSize)
		}
	})
	t.Run("backup creates its repo", func(t *testing.T) {
		fresh := filepath.Join(t.TempDir(), "new", "repo")
		m := c.backup(gen("-size 64KiB"), fileURL(fresh))
		c.listed(fileURL(fresh), m.ID)
	})
	t.Run("final error is JSON with --log-format json", func(t *testing.T) {
		r := c.fail(2, "list", "--repo", fileURL(missing), "--log-format", "json")
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		var rec struct {
			Level    string `json:"level"`
			Error    string `json:"error"`
			ExitCode int    `json:"exitCode"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil || rec.Level != "ERROR" || !strings.Contains(rec.Error, "does not exist") || rec.ExitCode != 2 {
			t.Fatalf("last stderr line is not a JSON error record (%v): %s", err, r.stderr)
		}
		r = c.fail(1, "verify", "--repo", repo, "--backup", "20200101T000000.000Z-00000000", "--log-format", "json")
		lines = strings.Split(strings.TrimSpace(r.stderr), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil || rec.ExitCode != 1 {
			t.Fatalf("a runtime failure's last line is not a JSON error record (%v): %s", err, r.stderr)
		}
	})
}
