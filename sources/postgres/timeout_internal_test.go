package postgres

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestGuardTransactionTimeout(t *testing.T) {
	preamble := "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSET lock_timeout = 0;\nSET transaction_timeout = 0;\nSET client_encoding = 'UTF8';\n"
	// The same line as COPY data after the preamble is data: untouched.
	data := strings.Repeat("COPY t (a) FROM stdin;\n", 70) + "SET transaction_timeout = 0;\n\\.\n"
	out, err := io.ReadAll(iotest.OneByteReader(guardTransactionTimeout(strings.NewReader(preamble + data))))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	want := strings.Replace(preamble, "SET transaction_timeout = 0;\n", transactionTimeoutGuard, 1) + data
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if n := strings.Count(got, "set_config('transaction_timeout'"); n != 1 {
		t.Fatalf("%d guards, want 1", n)
	}
}

func TestGuardTransactionTimeoutPassesErrors(t *testing.T) {
	boom := errors.New("pg_restore failed")
	r := io.MultiReader(strings.NewReader("SET transaction_timeout = 0;\nSET x"), iotest.ErrReader(boom))
	out, err := io.ReadAll(guardTransactionTimeout(r))
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if !strings.HasSuffix(string(out), ">= 170000;\nSET x") {
		t.Fatalf("output %q lost the text before the error", out)
	}
}
