package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// testKey is a key pair written as a person would have it: the identity in
// a file (age-keygen's output or an ssh private key), the recipient as
// text.
type testKey struct {
	identity     string // the secret text
	identityFile string
	recipient    string
}

func newAgeKey(t *testing.T) testKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	k := testKey{identity: id.String(), recipient: id.Recipient().String()}
	k.identityFile = writeFile(t, "key.txt", fmt.Sprintf("# created: by a test\n# public key: %s\n%s\n", k.recipient, k.identity))
	return k
}

func newSSHKey(t *testing.T) testKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	spk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k := testKey{identity: string(pem.EncodeToMemory(block)), recipient: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spk))) + " ops@example.com"}
	k.identityFile = writeFile(t, "id_ed25519", k.identity)
	return k
}

// secretBody is a piece of the key that appears in nothing but the key.
func (k testKey) secretBody() string {
	if strings.HasPrefix(k.identity, "AGE-SECRET-KEY-") {
		return k.identity[len("AGE-SECRET-KEY-1"):]
	}
	lines := strings.Split(k.identity, "\n")
	return lines[len(lines)/2] // the middle of the PEM body
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// secretLike is any age secret key (messages may name the prefix alone).
var secretLike = regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]{20}`)

// noSecret fails the test if any key's secret text is in any output run
// by the test or in any file under the dirs (the repo: manifests, parts
// objects).
func noSecret(t *testing.T, keys []testKey, results []result, dirs ...string) {
	t.Helper()
	var out bytes.Buffer
	for _, r := range results {
		out.WriteString(r.stdout + r.stderr)
	}
	for _, dir := range dirs {
		for _, f := range repoFiles(t, dir) {
			if strings.HasSuffix(f, ".age") {
				continue // ciphertext
			}
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			out.Write(data)
		}
	}
	for _, k := range keys {
		if bytes.Contains(out.Bytes(), []byte(k.secretBody())) {
			t.Fatalf("a secret key appears in the output or the repo")
		}
	}
	if secretLike.Match(out.Bytes()) || bytes.Contains(out.Bytes(), []byte("PRIVATE KEY-----")) {
		t.Fatalf("something that looks like a secret key appears in the output or the repo:\n%s", out.String())
	}
}

// TestEveryDriverEncrypted backs one PostgreSQL database up, encrypted to
// two recipients (an age key on the command line, an ssh key in a
// recipients file), into a repo of every type; verifies it without a key
// (stored bytes only) and with one; and restores it with each identity
// alone: the age key into a new database, the ssh key to a file.
func TestEveryDriverEncrypted(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_enc_drivers")
	srv.Populate(t, db, 20_000)
	want := srv.Fingerprint(t, db)
	a, s := newAgeKey(t), newSSHKey(t)
	recipientsFile := writeFile(t, "recipients.txt", "# the ops team\n\n"+s.recipient+"\n")

	repos := []struct {
		name string
		url  func(t *testing.T, c *cli) string
	}{
		{"fs", func(t *testing.T, c *cli) string { return fileURL(t.TempDir()) }},
		{"s3", func(t *testing.T, c *cli) string { return s3URL(c, emulators.S3(t), "backups/pg") }},
		{"ibmcos", func(t *testing.T, c *cli) string {
			cfg, _ := emulators.IBMCOS(t, emulators.IBMCOSHMAC)
			return ibmcosURL(c, cfg, "backups")
		}},
		{"gcs", func(t *testing.T, c *cli) string { return gcsURL(emulators.GCS(t), "backups") }},
		{"azure", func(t *testing.T, c *cli) string { return azureURL(c, emulators.Azurite(t), "backups") }},
	}
	for _, repo := range repos {
		t.Run(repo.name, func(t *testing.T) {
			c := newCLI(t)
			u := repo.url(t, c)
			var runs []result
			m := c.backup(srv.URL(name), u, "--recipient", a.recipient, "--recipients-file", recipientsFile, "--part-size", "256KiB")
			if m.Encryption == nil || len(m.Encryption.Recipients) != 2 || m.DataObject != archiver.DataObjectEncrypted {
				t.Fatalf("manifest: data object %q, encryption %+v; want age to 2 recipients", m.DataObject, m.Encryption)
			}
			c.listed(u, m.ID)
			if r := c.ok("list", "--repo", u); !strings.Contains(r.stdout, "ENCRYPTED") || !strings.Contains(r.stdout, "age, 2 recipient(s)") {
				t.Errorf("list does not say the backup is encrypted:\n%s", r.stdout)
			}
			r := c.ok("verify", "--repo", u)
			if !strings.Contains(r.stdout, "content NOT checked") {
				t.Errorf("verify without identity printed %q; want it to say the content was not checked", r.stdout)
			}
			runs = append(runs, r, c.ok("verify", "--repo", u, "--identity-file", a.identityFile))

			target := srv.Name(t, "cli_enc_dst")
			runs = append(runs, c.ok("restore", "--repo", u, "--target", srv.URL(target), "--create-db", "--identity-file", a.identityFile))
			testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), want)

			out := filepath.Join(t.TempDir(), "dump")
			c.setenv(envIdentity, s.identity)
			runs = append(runs, c.ok("restore", "--repo", u, "--output", out))
			delete(c.env, envIdentity)
			dump, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(dump); hex.EncodeToString(sum[:]) != m.UncompressedSHA256 {
				t.Fatalf("the dump restored with the ssh identity has sha256 %x, the backup's is %s", sum, m.UncompressedSHA256)
			}
			noSecret(t, []testKey{a, s}, runs)
		})
	}
}

// TestEncryptedBackupStandardTools: the acceptance line, with the
// Debian age package and nothing of ours:
// age -d -i key.txt data.zst.age | zstd -d | pg_restore -l.
func TestEncryptedBackupStandardTools(t *testing.T) {
	for _, tool := range []string{"age", "zstd", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_enc_tools")
	srv.Populate(t, db, 5_000)
	k := newAgeKey(t)
	c := newCLI(t)
	dir := t.TempDir()
	c.setenv(envRecipients, k.recipient)
	m := c.backup(srv.URL(name), fileURL(dir))
	if m.Encryption == nil || m.Encryption.Recipients[0] != k.recipient {
		t.Fatalf("DBARCHIVE_RECIPIENTS did not encrypt the backup: %+v", m.Encryption)
	}
	script := fmt.Sprintf("age -d -i %s %s | zstd -d | pg_restore -l", shellQuote(k.identityFile), shellQuote(filepath.Join(dir, m.ID, "data.zst.age")))
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	for _, want := range []string{"TABLE DATA public big", "TRIGGER public people people_audit"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pg_restore -l does not list %q:\n%s", want, out)
		}
	}
}

// TestEncryptionErrors: a malformed recipient or identity, a missing one
// and a wrong one each fail with a message that says what is wrong (the
// flag, the file and line, the backup's recipients) and the exit code of
// its kind: 2 for what the command line got wrong, 1 for a key that does
// not fit. Nothing anywhere shows a secret, even at debug level in JSON.
func TestEncryptionErrors(t *testing.T) {
	a, b, wrong := newAgeKey(t), newAgeKey(t), newAgeKey(t)
	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	var runs []result
	expect := func(code int, wants []string, args ...string) result {
		t.Helper()
		r := c.fail(code, args...)
		for _, w := range wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("dbarchive %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, r.stderr)
			}
		}
		runs = append(runs, r)
		return r
	}
	src := gen("-size 3MiB")

	// Recipients: the identity pasted where a public key goes, a bad line
	// in a file, a bad variable. Nothing is stored.
	expect(2, []string{"--recipient (the 2nd)", "secret key", "age-keygen -y"}, "backup", "--source", src, "--repo", repo, "--recipient", a.recipient, "--recipient", wrong.identity)
	bad := writeFile(t, "recipients.txt", "# keys\n"+a.recipient+"\nage1notakey\n")
	expect(2, []string{"--recipients-file " + bad + ", line 3", "malformed age recipient"}, "backup", "--source", src, "--repo", repo, "--recipients-file", bad)
	expect(2, []string{"--recipients-file", "no such file"}, "backup", "--source", src, "--repo", repo, "--recipients-file", bad+".missing")
	c.setenv(envRecipients, a.recipient+","+wrong.identity)
	expect(2, []string{envRecipients + ", line 2", "secret key"}, "backup", "--source", src, "--repo", repo)
	delete(c.env, envRecipients)
	if files := repoFiles(t, dir); len(files) != 0 {
		t.Fatalf("refused backups stored %v", files)
	}

	m := c.backup(src, repo, "--recipient", a.recipient, "--recipient", b.recipient, "--log-level", "debug", "--log-format", "json")
	out := filepath.Join(t.TempDir(), "out")

	// No identity: exit 2 before anything is written, naming the keys that
	// would do.
	r := expect(2, []string{m.ID, "is encrypted", a.recipient, b.recipient, "--identity-file"}, "restore", "--repo", repo, "--output", out)
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("a restore without identity wrote %s", out)
	}
	_ = r
	// A wrong identity: exit 1, the backup's recipients and the key tried.
	c.setenv(envIdentity, wrong.identity)
	expect(1, []string{m.ID, "no identity given matches", a.recipient, b.recipient, wrong.recipient}, "restore", "--repo", repo, "--output", out, "--log-level", "debug")
	expect(1, []string{"no identity given matches"}, "verify", "--repo", repo, "--log-format", "json", "--log-level", "debug")
	delete(c.env, envIdentity)
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("a restore with a wrong identity wrote %s", out)
	}
	// Malformed identities name the file and the line.
	badID := writeFile(t, "id.txt", "# mine\n"+a.identity[:len(a.identity)-2]+"xx\n")
	expect(2, []string{"--identity-file " + badID + ", line 2", "malformed age identity"}, "restore", "--repo", repo, "--output", out, "--identity-file", badID)
	pubID := writeFile(t, "pub.txt", a.recipient+"\n")
	expect(2, []string{"line 1", "a recipient (a public key), not an identity"}, "verify", "--repo", repo, "--identity-file", pubID)
	c.setenv(envIdentity, "hunter2-"+wrong.identity)
	expect(2, []string{envIdentity + ", line 1", "not an age identity"}, "verify", "--repo", repo)
	delete(c.env, envIdentity)
	expect(2, []string{"give one of --identity-file"}, "verify", "--repo", repo, "--identity-file", a.identityFile, "--passphrase-file", a.identityFile)

	// The right identity in the variable works, and a tool restore starts
	// never sees it: not in its argv, not in its environment.
	c.setenv(envIdentity, b.identity)
	childEnv := filepath.Join(t.TempDir(), "env")
	runs = append(runs, c.ok("restore", "--repo", repo, "--target", fmt.Sprintf("exec:sh -c 'env > %s; cat /proc/$$/cmdline >> %s; cat > /dev/null'", childEnv, childEnv), "--log-level", "debug"))
	runs = append(runs, c.ok("verify", "--repo", repo, "--log-level", "debug", "--log-format", "json"))
	delete(c.env, envIdentity)
	seen, err := os.ReadFile(childEnv)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(seen, []byte(b.secretBody())) || bytes.Contains(seen, []byte(envIdentity)) || !bytes.Contains(seen, []byte("PATH=")) {
		t.Fatalf("the restore tool's environment and argv hold the identity (or were not captured):\n%s", seen)
	}
	noSecret(t, []testKey{a, b, wrong}, runs, dir)
}

// TestEncryptedTamperKeepsTarget: a flipped byte in the ciphertext fails
// verify (with and without identity) and a restore into an existing
// database, which is left as it was. Then the same damage with every
// checksum forged to match, as someone who can write the bucket could: the
// stored-bytes check passes, but age's authentication stops the restore
// before pg_restore sees a clean end, and the target is still unchanged.
func TestEncryptedTamperKeepsTarget(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_enc_flip")
	srv.Populate(t, db, 100_000)
	k := newAgeKey(t)
	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	m := c.backup(srv.URL(name), repo, "--part-size", "256KiB", "--recipient", k.recipient)
	data := filepath.Join(dir, m.ID, archiver.DataObjectEncrypted)
	stored, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) < 1<<20 {
		t.Fatalf("stored object is %d bytes, want several parts", len(stored))
	}
	damaged := bytes.Clone(stored)
	damaged[len(damaged)/3] ^= 0x20
	if err := os.WriteFile(data, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	target, tdb := srv.Create(t, "cli_enc_keep")
	if _, err := tdb.Exec(`CREATE TABLE keep (v text); INSERT INTO keep VALUES ('untouched')`); err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		var v string
		if err := tdb.QueryRow(`SELECT string_agg(v, ',') FROM keep`).Scan(&v); err != nil || v != "untouched" || !slices.Equal(pgTables(t, tdb), []string{"keep"}) {
			t.Fatalf("target after a failed restore: tables %v, keep = %q (err %v); want only keep = untouched", pgTables(t, tdb), v, err)
		}
	}
	checksum := func(r result) {
		t.Helper()
		if !strings.Contains(r.stderr, "checksum mismatch") || !strings.Contains(r.stderr, m.ID) {
			t.Errorf("want a checksum error naming backup %s; stderr:\n%s", m.ID, r.stderr)
		}
	}
	checksum(c.fail(1, "verify", "--repo", repo))
	checksum(c.fail(1, "verify", "--repo", repo, "--identity-file", k.identityFile))
	checksum(c.fail(1, "restore", "--repo", repo, "--overwrite", "--target", srv.URL(target), "--identity-file", k.identityFile))
	unchanged(t)

	// Forge the parts object and the manifest to match the damage.
	var parts archiver.PartIndex
	partsPath := filepath.Join(dir, m.ID, archiver.PartsObject)
	raw, err := os.ReadFile(partsPath)
	if err != nil || json.Unmarshal(raw, &parts) != nil {
		t.Fatalf("parts object: %v", err)
	}
	var off int64
	for i, p := range parts.Parts {
		sum := sha256.Sum256(damaged[off : off+p.Size])
		parts.Parts[i].SHA256 = hex.EncodeToString(sum[:])
		off += p.Size
	}
	raw, _ = json.Marshal(&parts)
	if err := os.WriteFile(partsPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	forged := *m
	ps, ds := sha256.Sum256(raw), sha256.Sum256(damaged)
	forged.PartsSHA256, forged.StoredSHA256 = hex.EncodeToString(ps[:]), hex.EncodeToString(ds[:])
	enc, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.ID, archiver.ManifestObject), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := c.ok("verify", "--repo", repo); !strings.Contains(r.stdout, "content NOT checked") {
		t.Errorf("verify of the forged stored bytes without identity: %q", r.stdout)
	}
	for _, args := range [][]string{
		{"verify", "--repo", repo, "--identity-file", k.identityFile},
		{"restore", "--repo", repo, "--overwrite", "--target", srv.URL(target), "--identity-file", k.identityFile},
	} {
		r := c.fail(1, args...)
		checksum(r)
		if !strings.Contains(r.stderr, "age stream does not decrypt") {
			t.Errorf("%s: want age's authentication failure; stderr:\n%s", args[0], r.stderr)
		}
	}
	unchanged(t)
}

// TestPassphraseCLI: a person can encrypt to a passphrase (age scrypt) and
// restore with it; it cannot be mixed with recipients.
func TestPassphraseCLI(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	pass := writeFile(t, "pass", "correct horse battery staple\n")
	c.fail(2, "backup", "--source", gen("-size 1MiB"), "--repo", repo, "--passphrase-file", pass, "--recipient", newAgeKey(t).recipient)
	m := c.backup(gen("-size 1MiB"), repo, "--passphrase-file", pass)
	if m.Encryption == nil || fmt.Sprint(m.Encryption.Recipients) != "[scrypt]" {
		t.Fatalf("encryption %+v, want a passphrase", m.Encryption)
	}
	r := c.fail(2, "verify", "--repo", repo, "--identity-file", newAgeKey(t).identityFile+".missing")
	if !strings.Contains(r.stderr, "--identity-file") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if r := c.fail(2, "restore", "--repo", repo, "--output", "-"); !strings.Contains(r.stderr, "a passphrase (give --passphrase-file)") {
		t.Errorf("restore without the passphrase: %s", r.stderr)
	}
	if r := c.ok("verify", "--repo", repo, "--passphrase-file", pass); !strings.Contains(r.stdout, m.ID+"\tok\t") {
		t.Errorf("verify with the passphrase: %q", r.stdout)
	}
	for _, f := range repoFiles(t, dir) {
		if data, err := os.ReadFile(filepath.Join(dir, f)); err != nil || bytes.Contains(data, []byte("horse")) {
			t.Fatalf("%s: the passphrase is in the repo (or it cannot be read: %v)", f, err)
		}
	}
}
