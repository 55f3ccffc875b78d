package archiver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// The table list of an encrypted backup says what the database holds
// (table names, row counts), so it is encrypted to the same keys: the
// stored object is not readable JSON, verify without a key still checks its
// sha256, and only an identity reads it.
func TestEncryptedTableList(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	k := newAgeKey(t)
	dump := []byte("--\n-- PostgreSQL database dump\n--\n\nCOPY public.secret_customers (id, name) FROM stdin;\n1\tAda\n2\tGrace\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n")
	src := scanSource{funcSource: funcSource{dump: func(_ context.Context, w io.Writer) error {
		_, err := w.Write(dump)
		return err
	}}, scanner: dumpscan.NewPostgresPlain}
	m, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p", Recipients: recipients(t, k.recipient)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Tables == nil || m.Tables.Object != archiver.TablesObjectEncrypted || m.Tables.Count != 1 || m.Tables.Rows != 2 {
		t.Fatalf("manifest tables = %+v; want an encrypted list of one table and two rows", m.Tables)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "p", m.ID, archiver.TablesObjectEncrypted))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("secret_customers")) || !bytes.HasPrefix(stored, []byte("age-encryption.org/v1")) {
		t.Fatalf("the stored table list is not an age file, or shows a table name:\n%.200s", stored)
	}
	if _, err := archiver.ReadTables(ctx, b, "p", m, nil); !errors.Is(err, archiver.ErrIdentityRequired) {
		t.Errorf("ReadTables without an identity = %v; want ErrIdentityRequired", err)
	}
	l, err := archiver.ReadTables(ctx, b, "p", m, identities(t, k.identity))
	if err != nil || len(l.Tables) != 1 || l.Tables[0].QualifiedName() != "public.secret_customers" || l.Tables[0].Rows != 2 {
		t.Fatalf("ReadTables with the identity = %+v, %v", l, err)
	}
	if err := archiver.VerifyStored(ctx, b, m, archiver.RestoreOptions{Prefix: "p"}); err != nil {
		t.Fatalf("VerifyStored of an intact backup: %v", err)
	}
	stored[len(stored)-1] ^= 1
	if err := os.WriteFile(filepath.Join(dir, "p", m.ID, archiver.TablesObjectEncrypted), stored, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := archiver.VerifyStored(ctx, b, m, archiver.RestoreOptions{Prefix: "p"}); !errors.Is(err, archiver.ErrChecksum) {
		t.Errorf("VerifyStored with a flipped byte in the table list = %v; want a checksum error", err)
	}
}
