package archiver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/ssh"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
)

// A key pair made with age-keygen for the tests that need fixed text. It
// protects nothing.
const (
	testRecipient = "age1wjkw9cx4nnk54wazkhhjk774vtsyfve53fqf89luw9skgh0rqausjnj233"
	testIdentity  = "AGE-SECRET-KEY-1AVWEPUJDNKG0MAU5WT93RQ7E63C4H2TNF6K7KFK9FS4C0FESLVGQTXR9CA"
)

// keyPair is an identity file's text and its recipient's text.
type keyPair struct{ identity, recipient string }

func newAgeKey(t testing.TB) keyPair {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{identity: "# created by a test\n" + id.String() + "\n", recipient: id.Recipient().String()}
}

// newSSHKey is an unencrypted OpenSSH ed25519 private key file and its
// authorized_keys line with a comment.
func newSSHKey(t testing.TB) keyPair {
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
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spk))) + " ops@example.com"
	return keyPair{identity: string(pem.EncodeToMemory(block)), recipient: line}
}

func recipients(t testing.TB, texts ...string) []archiver.Recipient {
	t.Helper()
	var out []archiver.Recipient
	for _, s := range texts {
		r, err := archiver.ParseRecipient(s)
		if err != nil {
			t.Fatalf("ParseRecipient: %v", err)
		}
		out = append(out, r)
	}
	return out
}

func identities(t testing.TB, text string) *archiver.Identities {
	t.Helper()
	ids, err := archiver.ParseIdentities(strings.NewReader(text), "test identity")
	if err != nil {
		t.Fatalf("ParseIdentities: %v", err)
	}
	return ids
}

// restoreAll restores m with opts and returns what the sink read, and
// whether the sink saw a clean end of its input.
func restoreAll(t *testing.T, b *drivers.Bucket, m *archiver.Manifest, opts archiver.RestoreOptions) ([]byte, bool, error) {
	t.Helper()
	var got bytes.Buffer
	sawEOF := false
	err := archiver.Restore(context.Background(), b, m, opts, func(r io.Reader) error {
		_, err := io.Copy(&got, r)
		sawEOF = err == nil
		return err
	})
	return got.Bytes(), sawEOF, err
}

// TestEncryptedRoundTrip backs up to two recipients (an age key and an ssh
// key): the manifest records both public keys and no identity, each
// identity alone restores the stream, and the stored object is a standard
// age file of a standard zstd stream.
func TestEncryptedRoundTrip(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	a, s := newAgeKey(t), newSSHKey(t)
	data := compressible(21, 3<<20+5)
	// The ssh key twice (with and without its comment) is one recipient.
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Prefix: "p", PartSize: 64 << 10, Recipients: recipients(t, a.recipient, s.recipient, strings.TrimSuffix(s.recipient, " ops@example.com"))})
	if err != nil {
		t.Fatal(err)
	}
	sshNoComment := strings.TrimSuffix(s.recipient, " ops@example.com")
	if m.FormatVersion != 4 || m.DataObject != archiver.DataObjectEncrypted || m.Encryption == nil || m.Encryption.Scheme != "age" ||
		fmt.Sprint(m.Encryption.Recipients) != fmt.Sprint([]string{a.recipient, sshNoComment}) || m.PartCount < 4 {
		t.Fatalf("manifest: version %d, data object %q, encryption %+v, %d parts", m.FormatVersion, m.DataObject, m.Encryption, m.PartCount)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "p", m.ID, archiver.ManifestObject))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("SECRET")) || bytes.Contains(raw, []byte("PRIVATE")) || bytes.Contains(raw, []byte("ops@example.com")) {
		t.Fatalf("manifest holds key material or a key comment:\n%s", raw)
	}
	for name, key := range map[string]keyPair{"age": a, "ssh": s} {
		got, sawEOF, err := restoreAll(t, b, m, archiver.RestoreOptions{Prefix: "p", Identities: identities(t, key.identity)})
		if err != nil || !sawEOF || !bytes.Equal(got, data) {
			t.Fatalf("restore with the %s identity alone: %v, %d of %d bytes", name, err, len(got), len(data))
		}
		if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{Prefix: "p", Identities: identities(t, key.identity)}); err != nil {
			t.Fatalf("verify with the %s identity: %v", name, err)
		}
	}

	// The stored bytes: an age file whose plaintext is a zstd stream.
	stored, err := os.ReadFile(filepath.Join(dir, "p", m.ID, archiver.DataObjectEncrypted))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(stored); int64(len(stored)) != m.StoredSize || hex.EncodeToString(sum[:]) != m.StoredSHA256 {
		t.Fatalf("stored object: %d bytes sha256 %x; manifest %d bytes %s", len(stored), sum, m.StoredSize, m.StoredSHA256)
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(strings.Split(a.identity, "\n")[1]))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := age.Decrypt(bytes.NewReader(stored), id)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if got, err := io.ReadAll(dec); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("age then zstd: %v, %d of %d bytes", err, len(got), len(data))
	}
}

// TestPlainAndEncryptedSideBySide: one repo holds both; a plain backup
// stays format 2 (older readers still read it) and needs no identity.
func TestPlainAndEncryptedSideBySide(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	k := newAgeKey(t)
	plain, err := archiver.Backup(ctx, b, bytesSource(compressible(1, 100_000)), archiver.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := archiver.Backup(ctx, b, bytesSource(compressible(2, 100_000)), archiver.BackupOptions{Recipients: recipients(t, k.recipient)})
	if err != nil {
		t.Fatal(err)
	}
	listed, problems, err := archiver.List(ctx, b, "")
	if err != nil || len(problems) != 0 || len(listed) != 2 {
		t.Fatalf("List = %d backups, %v, %v", len(listed), problems, err)
	}
	byID := map[string]*archiver.Manifest{listed[0].ID: listed[0], listed[1].ID: listed[1]}
	if p, e := byID[plain.ID], byID[enc.ID]; p.Encryption != nil || p.FormatVersion != 3 || p.DataObject != archiver.DataObject || e.Encryption == nil || e.FormatVersion != 4 {
		t.Fatalf("listed: plain %+v, encrypted %+v", p, e)
	}
	// Identities given for a plain backup are not needed and do no harm.
	if err := archiver.Verify(ctx, b, plain, archiver.RestoreOptions{Identities: identities(t, k.identity)}); err != nil {
		t.Fatal(err)
	}
	if err := archiver.Verify(ctx, b, plain, archiver.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedWithoutMatchingIdentity: no identity and a wrong identity
// fail before the sink is called, with errors that say what to do and
// which keys the backup is for, and never show a secret. Without an
// identity the stored bytes can still be verified.
func TestEncryptedWithoutMatchingIdentity(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	a, s, wrong := newAgeKey(t), newSSHKey(t), newAgeKey(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(3, 1<<20)), archiver.BackupOptions{PartSize: 64 << 10, Recipients: recipients(t, a.recipient, s.recipient)})
	if err != nil {
		t.Fatal(err)
	}
	sink := func(io.Reader) error { t.Fatal("the sink was called"); return nil }

	err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{}, sink)
	if !errors.Is(err, archiver.ErrIdentityRequired) || !strings.Contains(err.Error(), m.ID) {
		t.Fatalf("restore without identity = %v, want ErrIdentityRequired naming the backup", err)
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{}); !errors.Is(err, archiver.ErrIdentityRequired) {
		t.Fatalf("verify without identity = %v, want ErrIdentityRequired", err)
	}
	if err := archiver.VerifyStored(ctx, b, m, archiver.RestoreOptions{}); err != nil {
		t.Fatalf("VerifyStored without identity = %v", err)
	}

	err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{Identities: identities(t, wrong.identity)}, sink)
	nm, ok := errors.AsType[*archiver.NoMatchingIdentityError](err)
	if !ok {
		t.Fatalf("restore with a wrong identity = %v, want a NoMatchingIdentityError", err)
	}
	pk, _, _, _, perr := ssh.ParseAuthorizedKey([]byte(s.recipient))
	if perr != nil {
		t.Fatal(perr)
	}
	for _, want := range []string{m.ID, a.recipient, "ssh-ed25519 " + ssh.FingerprintSHA256(pk), wrong.recipient} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if len(nm.Recipients) != 2 || len(nm.Tried) != 1 {
		t.Errorf("NoMatchingIdentityError %+v, want 2 recipients and 1 identity tried", nm)
	}
	if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Fatalf("error shows a secret key: %v", err)
	}
}

// TestEncryptedTamper: a flipped byte anywhere in the ciphertext fails
// verify and restore, and the sink never sees a clean end. The part
// checksums catch it first; when whoever changed the bytes also rewrote
// every checksum to match, age's authentication still refuses the chunk.
func TestEncryptedTamper(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	k := newAgeKey(t)
	const partSize = 64 << 10
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(4, 1<<20)), archiver.BackupOptions{PartSize: partSize, Recipients: recipients(t, k.recipient)})
	if err != nil {
		t.Fatal(err)
	}
	opts := archiver.RestoreOptions{Identities: identities(t, k.identity)}
	path := filepath.Join(dir, m.ID, archiver.DataObjectEncrypted)
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The payload starts after the header's MAC line.
	header := bytes.Index(stored, []byte("\n--- "))
	header += bytes.IndexByte(stored[header+1:], '\n') + 2
	positions := []int64{int64(header), int64(header) + 20, m.StoredSize / 2, m.StoredSize - 20, m.StoredSize - 1}
	for _, pos := range positions {
		damaged := bytes.Clone(stored)
		damaged[pos] ^= 0x10
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		part := int(pos/partSize) + 1
		corruption(t, archiver.VerifyStored(ctx, b, m, archiver.RestoreOptions{}), m.ID, part)
		corruption(t, archiver.Verify(ctx, b, m, opts), m.ID, part)
		_, sawEOF, err := restoreAll(t, b, m, opts)
		if corruption(t, err, m.ID, part); sawEOF {
			t.Fatalf("flip at %d: the sink saw a clean end", pos)
		}

		// The same damage with every checksum forged to match.
		forged := forgeChecksums(t, dir, m, damaged, partSize)
		if err := archiver.VerifyStored(ctx, b, forged, archiver.RestoreOptions{}); err != nil {
			t.Fatalf("flip at %d with forged checksums: VerifyStored = %v; the forgery should pass it", pos, err)
		}
		_, sawEOF, err = restoreAll(t, b, forged, opts)
		ce := corruption(t, err, m.ID, 0)
		if sawEOF || !strings.Contains(err.Error(), "age stream does not decrypt") {
			t.Fatalf("flip at %d with forged checksums: %v (%+v), sink saw a clean end: %v", pos, err, ce, sawEOF)
		}
		if err := archiver.Verify(ctx, b, forged, opts); !errors.Is(err, archiver.ErrChecksum) {
			t.Fatalf("flip at %d with forged checksums: Verify = %v", pos, err)
		}
		if err := os.WriteFile(filepath.Join(dir, m.ID, archiver.PartsObject), mustParts(t, stored, m, partSize), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := archiver.Verify(ctx, b, m, opts); err != nil {
		t.Fatalf("verify of the repaired backup: %v", err)
	}
}

// mustParts is the parts object of data cut as m's parts are.
func mustParts(t *testing.T, data []byte, m *archiver.Manifest, partSize int) []byte {
	t.Helper()
	x := archiver.PartIndex{ID: m.ID}
	for off := 0; off < len(data); off += partSize {
		p := data[off:min(off+partSize, len(data))]
		sum := sha256.Sum256(p)
		x.Parts = append(x.Parts, archiver.PartInfo{Size: int64(len(p)), SHA256: hex.EncodeToString(sum[:])})
	}
	out, err := json.Marshal(&x)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forgeChecksums writes a parts object that matches damaged and returns m
// with stored and parts sha256 to match, as someone who can write the
// bucket could.
func forgeChecksums(t *testing.T, dir string, m *archiver.Manifest, damaged []byte, partSize int) *archiver.Manifest {
	t.Helper()
	parts := mustParts(t, damaged, m, partSize)
	if err := os.WriteFile(filepath.Join(dir, m.ID, archiver.PartsObject), parts, 0o600); err != nil {
		t.Fatal(err)
	}
	f := *m
	ps, ds := sha256.Sum256(parts), sha256.Sum256(damaged)
	f.PartsSHA256, f.StoredSHA256 = hex.EncodeToString(ps[:]), hex.EncodeToString(ds[:])
	return &f
}

// TestPassphrase: a passphrase (scrypt) encrypts alone and decrypts; it
// cannot be mixed with public keys, which fails before anything is stored.
func TestPassphrase(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	r, err := archiver.ScryptRecipient("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	_, err = archiver.Backup(ctx, b, bytesSource(compressible(5, 1000)), archiver.BackupOptions{Recipients: append(recipients(t, testRecipient), r)})
	if err == nil || !strings.Contains(err.Error(), "passphrase must be a backup's only recipient") {
		t.Fatalf("backup to a passphrase and a key = %v", err)
	}
	requireNothingLeft(t, b, "")
	data := compressible(5, 200_000)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Recipients: []archiver.Recipient{r}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m.Encryption.Recipients) != "[scrypt]" {
		t.Fatalf("recipients %v, want [scrypt] and never the passphrase", m.Encryption.Recipients)
	}
	ids, err := archiver.ScryptIdentities("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := restoreAll(t, b, m, archiver.RestoreOptions{Identities: ids})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore with the passphrase: %v, %d of %d bytes", err, len(got), len(data))
	}
	wrong, _ := archiver.ScryptIdentities("wrong")
	if _, _, err := restoreAll(t, b, m, archiver.RestoreOptions{Identities: wrong}); err == nil {
		t.Fatal("restore with a wrong passphrase succeeded")
	}
}

// TestParseRecipients: age's recipients-file format; an error names the
// file and line and never repeats the line (it may be a secret pasted in
// the wrong place).
func TestParseRecipients(t *testing.T) {
	s := newSSHKey(t)
	rsaLine := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7" // truncated: malformed
	for _, tc := range []struct {
		name, file string
		n          int
		err        string
	}{
		{"age and ssh with comments", "# team keys\n\n" + testRecipient + "\n  # ops laptop\n" + s.recipient + "\r\n", 2, ""},
		{"identity pasted", "# keys\n" + testRecipient + "\n" + testIdentity + "\n", 0, "keys.txt, line 3: this is a secret key"},
		{"lower-case identity", strings.ToLower(testIdentity), 0, "keys.txt, line 1: this is a secret key"},
		{"garbage", testRecipient + "\nhello world\n", 0, "keys.txt, line 2: not an age recipient"},
		{"bad checksum", testRecipient[:len(testRecipient)-1] + "q\n", 0, "keys.txt, line 1: malformed age recipient"},
		{"malformed ssh", rsaLine + "\n", 0, "keys.txt, line 1: malformed ssh public key"},
		{"unsupported ssh type", "ssh-dss AAAAB3NzaC1kc3MAAACBAP\n", 0, "line 1: not an age recipient"},
		{"only comments", "# nothing\n\n", 0, "keys.txt holds no recipient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := archiver.ParseRecipients(strings.NewReader(tc.file), "keys.txt")
			if tc.err == "" {
				if err != nil || len(rs) != tc.n {
					t.Fatalf("ParseRecipients = %d, %v; want %d", len(rs), err, tc.n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseRecipients = %v, want %q", err, tc.err)
			}
			for _, line := range strings.Split(tc.file, "\n") {
				if len(line) > 12 && !strings.HasPrefix(line, "#") && strings.Contains(err.Error(), line[4:]) {
					t.Fatalf("error %q repeats the line %q", err, line)
				}
			}
		})
	}
}

// TestParseIdentities: age-keygen's file, an OpenSSH key, and errors that
// name the line without its text.
func TestParseIdentities(t *testing.T) {
	a, s := newAgeKey(t), newSSHKey(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		public     string // the recipient the identity decrypts, "" on error
		err        string
	}{
		{"age-keygen", a.identity, a.recipient, ""},
		{"age-keygen fixed", "# created: 2026-11-29\n# public key: " + testRecipient + "\n" + testIdentity + "\n", testRecipient, ""},
		{"openssh ed25519", s.identity, strings.TrimSuffix(s.recipient, " ops@example.com"), ""},
		{"public key given", "# mine\n" + testRecipient + "\n", "", "id.txt, line 2: this is a recipient (a public key), not an identity"},
		{"bad checksum", testIdentity[:len(testIdentity)-1] + "Q\n", "", "id.txt, line 1: malformed age identity"},
		{"garbage", "\n\nhunter2\n", "", "id.txt, line 3: not an age identity"},
		{"empty", "# nothing\n", "", "id.txt holds no identity"},
		{"ssh with passphrase", string(pem.EncodeToMemory(locked)), "", "id.txt is a passphrase-protected ssh key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := archiver.ParseIdentities(strings.NewReader(tc.file), "id.txt")
			if tc.err == "" {
				if err != nil || ids.Len() != 1 || ids.Recipients()[0] != tc.public {
					t.Fatalf("ParseIdentities = %v; want one identity for %s", err, tc.public)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseIdentities = %v, want %q", err, tc.err)
			}
			for _, secret := range []string{"hunter2", testIdentity[16:40]} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q repeats secret text", err)
				}
			}
		})
	}
}

// TestIdentitiesNeverPrint: every way a value is commonly printed or
// encoded shows a redaction, not the key.
func TestIdentitiesNeverPrint(t *testing.T) {
	ids := identities(t, testIdentity)
	opts := archiver.RestoreOptions{Identities: ids}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("restore", "identities", ids, "opts", opts)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("restore", "identities", ids, "opts", opts)
	js, err := json.Marshal(struct{ I *archiver.Identities }{ids})
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v %+v %#v %s %q %v %+v %#v", ids, ids, ids, ids, ids, opts, opts, opts) + logged.String() + string(js)
	if strings.Contains(out, "AGE-SECRET-KEY") || strings.Contains(out, testIdentity[16:]) {
		t.Fatalf("an identity printed:\n%s", out)
	}
	if !strings.Contains(out, "redacted") {
		t.Fatalf("no redaction marker in:\n%s", out)
	}
}

// TestInteropWithAgeCLI: the age command decrypts what a backup stored
// (and zstd decompresses it); and what `zstd | age -e` wrote restores
// through dbarchive once a manifest and parts object describe it (there is
// no import command: foreign archives are out of scope, this proves only
// that the format is the standard one).
func TestInteropWithAgeCLI(t *testing.T) {
	ageBin, zstdBin := requireTool(t, "age"), requireTool(t, "zstd")
	ctx := context.Background()
	b, dir := openFS(t)
	k := newAgeKey(t)
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyFile, []byte(k.identity), 0o600); err != nil {
		t.Fatal(err)
	}
	data := compressible(6, 2<<20+11)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10, Recipients: recipients(t, k.recipient, testRecipient)})
	if err != nil {
		t.Fatal(err)
	}
	shell := fmt.Sprintf("%s -d -i %s %s | %s -d -c", ageBin, keyFile, filepath.Join(dir, m.ID, archiver.DataObjectEncrypted), zstdBin)
	out, err := exec.Command("sh", "-c", shell).Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("age -d | zstd -d: %v, %d of %d bytes", err, len(out), len(data))
	}

	// The other way: the standard tools write, a manifest describes it.
	src := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(t.TempDir(), "data.zst.age")
	if out, err := exec.Command("sh", "-c", fmt.Sprintf("%s -q -c %s | %s -e -r %s -o %s", zstdBin, src, ageBin, k.recipient, foreign)).CombinedOutput(); err != nil {
		t.Fatalf("zstd | age -e: %v\n%s", err, out)
	}
	enc, err := os.ReadFile(foreign)
	if err != nil {
		t.Fatal(err)
	}
	f := *m
	f.ID = archiver.NewID(m.StartTime.Add(1e9))
	f.Encryption = &archiver.EncryptionInfo{Scheme: "age", Recipients: []string{k.recipient}}
	f.StoredSize = int64(len(enc))
	const partSize = 64 << 10
	f.PartCount = int((len(enc) + partSize - 1) / partSize)
	if err := os.MkdirAll(filepath.Join(dir, f.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, f.ID, archiver.DataObjectEncrypted), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	parts := mustParts(t, enc, &f, partSize)
	ps, ds := sha256.Sum256(parts), sha256.Sum256(enc)
	f.PartsSHA256, f.StoredSHA256 = hex.EncodeToString(ps[:]), hex.EncodeToString(ds[:])
	if err := os.WriteFile(filepath.Join(dir, f.ID, archiver.PartsObject), parts, 0o600); err != nil {
		t.Fatal(err)
	}
	manifest, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, f.ID, archiver.ManifestObject), manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	latest, err := archiver.Resolve(ctx, b, "", "latest", archiver.SetFilter{})
	if err != nil || latest.ID != f.ID {
		t.Fatalf("latest = %v, %v; want the described foreign archive %s", latest, err, f.ID)
	}
	got, _, err := restoreAll(t, b, latest, archiver.RestoreOptions{Identities: identities(t, k.identity)})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore of what age -e wrote: %v, %d of %d bytes", err, len(got), len(data))
	}
}

// requireTool is the path of a command the test needs: .ci/run installs
// it, so its absence is a failure.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (apt-get install %s; .ci/run installs it)", name, name)
	}
	return p
}

// TestLoadIdentityFile: what a restore Job does with a mounted identity
// Secret: read the file, restore with it.
func TestLoadIdentityFile(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	k := newAgeKey(t)
	data := compressible(9, 300_000)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Recipients: recipients(t, k.recipient)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity")
	if err := os.WriteFile(path, []byte(k.identity), 0o400); err != nil {
		t.Fatal(err)
	}
	ids, err := archiver.LoadIdentityFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := restoreAll(t, b, m, archiver.RestoreOptions{Identities: ids}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restore with the loaded identity: %v, %d of %d bytes", err, len(got), len(data))
	}
	if _, err := archiver.LoadIdentityFile(path + ".missing"); err == nil || !strings.Contains(err.Error(), "identity file") {
		t.Fatalf("missing identity file: %v", err)
	}
}

// TestEncryptedTinyStreams: an empty and a one-byte dump round-trip
// encrypted (age's final chunk may be empty).
func TestEncryptedTinyStreams(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	k := newAgeKey(t)
	for _, size := range []int{0, 1} {
		data := compressible(uint64(size), size)
		m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Recipients: recipients(t, k.recipient)})
		if err != nil {
			t.Fatal(err)
		}
		got, sawEOF, err := restoreAll(t, b, m, archiver.RestoreOptions{Identities: identities(t, k.identity)})
		if err != nil || !sawEOF || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: %v, got %d bytes", size, err, len(got))
		}
	}
}
