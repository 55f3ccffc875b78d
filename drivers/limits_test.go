package drivers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/drivers/driver"
)

// TestLimitsAreInclusive: the driver's limits are the largest values it
// accepts, so the portable layer passes them on: part 1 and part MaxParts,
// a part of exactly MaxPartSize, a part count of 0 or MaxParts, a key of
// exactly MaxKeyLength bytes, a part of exactly MinPartSize before the last.
// One past each is refused before any request (TestValidationBeforeAnyRequest).
func TestLimitsAreInclusive(t *testing.T) {
	m := newMem()
	b := portable(m)
	ctx := context.Background()
	l := m.Limits()
	longest := strings.Repeat("k", l.MaxKeyLength)
	if err := b.Delete(ctx, longest); err != nil {
		t.Fatalf("Delete of a key of exactly %d bytes: %v", l.MaxKeyLength, err)
	}
	u, err := b.NewUpload(ctx, longest)
	if err != nil {
		t.Fatal(err)
	}
	min := make([]byte, l.MinPartSize)
	for n := 1; n < l.MaxParts; n++ {
		if err := u.PutPart(ctx, n, min); err != nil {
			t.Fatalf("part %d of %d bytes: %v", n, len(min), err)
		}
	}
	if err := u.PutPart(ctx, l.MaxParts, make([]byte, l.MaxPartSize)); err != nil {
		t.Fatalf("part %d (MaxParts) of %d bytes (MaxPartSize): %v", l.MaxParts, l.MaxPartSize, err)
	}
	if got := m.count("put part"); got != l.MaxParts {
		t.Fatalf("%d parts reached the driver, want %d", got, l.MaxParts)
	}
	if err := u.Complete(ctx, l.MaxParts); err != nil {
		t.Fatalf("Complete of %d parts (MaxParts): %v", l.MaxParts, err)
	}
	if size := int64(len(m.objects[longest])); size != int64(l.MaxParts-1)*l.MinPartSize+l.MaxPartSize {
		t.Fatalf("the object has %d bytes", size)
	}
	empty, err := b.NewUpload(ctx, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Complete(ctx, 0); err != nil {
		t.Fatalf("Complete of 0 parts (an empty object): %v", err)
	}
}

// TestErrorIsMatchesSentinelsOnly: errors.Is(err, drivers.ErrNotFound) holds
// for every NotFound error, but an error of the same class about another
// operation, key, cause or retry history is a different error: code alone
// matches only the bare sentinels.
func TestErrorIsMatchesSentinelsOnly(t *testing.T) {
	cause := errors.New("no such key")
	err := Errorf(NotFound, "stat", "a", cause)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrPermanent) || errors.Is(err, ErrTransient) || errors.Is(err, ErrPermissionDenied) {
		t.Fatal("errors.Is must match the sentinel of the error's own class, and only it")
	}
	if !errors.Is(err, cause) || !errors.Is(err, err) {
		t.Fatal("errors.Is must still see the cause and the error itself")
	}
	for name, other := range map[string]error{
		"other op":      &Error{Code: NotFound, Op: "read"},
		"other key":     &Error{Code: NotFound, Key: "b"},
		"with a cause":  &Error{Code: NotFound, Err: cause},
		"with attempts": &Error{Code: NotFound, Attempts: 2},
	} {
		if errors.Is(err, other) {
			t.Errorf("%s: errors.Is(%v, %#v) holds; only sentinels match by code", name, err, other)
		}
	}
}

// TestErrorMessage: an error names the operation, the key and the cause
// once, says how long retrying went on when it did, and falls back to the
// class when it has nothing else to say.
func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Code: NotFound, Op: "stat", Key: "a/b", Err: errors.New("gone")}, `stat "a/b": gone`},
		{&Error{Code: NotFound, Op: "list", Err: errors.New("gone")}, `list: gone`},
		{&Error{Code: NotFound, Err: errors.New("gone")}, `gone`},
		{&Error{Code: PermissionDenied, Op: "stat", Key: "k"}, `stat "k"`},
		{&Error{Code: Transient}, `Transient`},
		{&Error{Code: Transient, Op: "put part 2", Key: "k", Err: errors.New("503"), Attempts: 4, Elapsed: 1500 * time.Millisecond},
			`put part 2 "k": 503 (gave up after 4 attempts in 1.5s)`},
		{&Error{Code: Transient, Op: "stat", Err: errors.New("503"), Attempts: 1, Elapsed: time.Second}, `stat: 503`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	for code, want := range map[Code]string{Unknown: "Unknown", NotFound: "NotFound", PermissionDenied: "PermissionDenied",
		Transient: "Transient", Permanent: "Permanent", -1: "Code(-1)", 5: "Code(5)"} {
		if got := code.String(); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", int(code), got, want)
		}
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestClassifyNetworkFailures: every way a connection fails is worth a retry,
// an unclassified error inside a driver's *Error is classified by its cause,
// and a config error is final.
func TestClassifyNetworkFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want Code
	}{
		"refused":            {fmt.Errorf("dial: %w", syscall.ECONNREFUSED), Transient},
		"broken pipe":        {fmt.Errorf("write: %w", syscall.EPIPE), Transient},
		"aborted":            {fmt.Errorf("read: %w", syscall.ECONNABORTED), Transient},
		"timeout":            {fmt.Errorf("read: %w", timeoutErr{}), Transient},
		"op error":           {&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}, Transient},
		"unknown in *Error":  {&Error{Code: Unknown, Op: "put part", Err: fmt.Errorf("write: %w", syscall.EPIPE)}, Transient},
		"config error":       {&ConfigError{Repo: "r", Field: "endpoint", Reason: "bad"}, Permanent},
		"nil":                {nil, Unknown},
		"deadline in *Error": {&Error{Code: Unknown, Err: context.DeadlineExceeded}, Transient},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("%s: CodeOf(%v) = %v, want %v", name, tc.err, got, tc.want)
		}
	}
	for status, want := range map[int]Code{399: Unknown, 402: Permanent, 407: Permanent, 428: Permanent, 499: Permanent, 599: Transient, 304: Unknown} {
		if got := ClassifyHTTPStatus(status); got != want {
			t.Errorf("ClassifyHTTPStatus(%d) = %v, want %v", status, got, want)
		}
	}
}

// TestSecretsValues: Values reveals every non-empty secret (what a test
// searches logs for), and the zero Secret is empty.
func TestSecretsValues(t *testing.T) {
	s := SecretsFromStrings(map[string]string{"key": "k1", "empty": ""})
	if got := s.Values(); len(got) != 1 || got[0] != "k1" {
		t.Fatalf("Values = %q, want [k1]", got)
	}
	if s.Get("key").Reveal() != "k1" || s.Get("key").IsZero() || !s.Get("empty").IsZero() || !s.Get("missing").IsZero() {
		t.Fatal("Get and IsZero disagree with the map")
	}
}

// TestOpenWithoutType: a repo config without a type says the type is
// required (not that "" is an unknown type), listing the types there are.
func TestOpenWithoutType(t *testing.T) {
	Register(Registration{Type: "opentest", Scheme: "opentest", Open: func(context.Context, Config) (driver.Bucket, error) { return newMem(), nil }})
	_, err := Open(context.Background(), Config{Name: "r"})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "type" || !strings.Contains(err.Error(), "is required; known types: ") || !strings.Contains(err.Error(), "opentest") {
		t.Fatalf("Open without a type = %v, want a ConfigError saying the type is required", err)
	}
}
