package drivers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

func TestRegisterPanics(t *testing.T) {
	factory := func(context.Context, drivers.Config) (driver.Bucket, error) { return nil, nil }
	for name, call := range map[string]func(){
		"empty type":       func() { drivers.Register(drivers.Registration{Scheme: "x", Open: factory}) },
		"empty scheme":     func() { drivers.Register(drivers.Registration{Type: "x", Open: factory}) },
		"nil factory":      func() { drivers.Register(drivers.Registration{Type: "nil-factory", Scheme: "nil-factory"}) },
		"duplicate type":   func() { drivers.Register(drivers.Registration{Type: "fs", Scheme: "other", Open: factory}) },
		"duplicate scheme": func() { drivers.Register(drivers.Registration{Type: "other", Scheme: "s3", Open: factory}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			call()
		})
	}
}

func TestOpenUnknownTypeListsKnownTypes(t *testing.T) {
	_, err := drivers.Open(context.Background(), drivers.Config{Name: "backups", Type: "ftp"})
	var ce *drivers.ConfigError
	if !errors.As(err, &ce) || ce.Repo != "backups" || ce.Field != "type" {
		t.Fatalf("Open of type ftp = %v, want a ConfigError on field type of repo backups", err)
	}
	for _, known := range []string{"azure", "fs", "gcs", "ibmcos", "s3"} {
		if !strings.Contains(err.Error(), known) {
			t.Errorf("error %q does not list the known type %s", err, known)
		}
	}
	if drivers.CodeOf(err) != drivers.Permanent || !errors.Is(err, drivers.ErrPermanent) {
		t.Errorf("a config error must be Permanent, got %v", drivers.CodeOf(err))
	}
	if _, err := drivers.Open(context.Background(), drivers.Config{Type: "fs"}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("Open without a repo name = %v, want an error naming the field", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "hunter2-very-secret"
	s := drivers.NewSecret(value)
	cfg := drivers.Config{Name: "r", Secrets: drivers.Secrets{"AccountKey": s}}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "secret", s, "cfg", cfg)
	js, _ := json.Marshal(cfg)
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s, s, s),
		fmt.Sprintf("%+v %#v", cfg, cfg), string(js), logged.String(),
	} {
		if strings.Contains(out, value) {
			t.Fatalf("secret printed: %s", out)
		}
	}
	if s.Reveal() != value {
		t.Fatal("Reveal lost the value")
	}
}

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want drivers.Code
	}{
		{drivers.Errorf(drivers.NotFound, "stat", "k", errors.New("x")), drivers.NotFound},
		{fmt.Errorf("wrapped: %w", drivers.Errorf(drivers.Transient, "put", "k", nil)), drivers.Transient},
		{context.DeadlineExceeded, drivers.Transient},
		{context.Canceled, drivers.Permanent},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), drivers.Transient},
		{errors.New("mystery"), drivers.Unknown},
	}
	for _, c := range cases {
		if got := drivers.CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	nf := drivers.Errorf(drivers.NotFound, "stat", "k", nil)
	if !errors.Is(nf, drivers.ErrNotFound) || errors.Is(nf, drivers.ErrTransient) {
		t.Error("errors.Is must match the sentinel of the error's own class only")
	}
}

func TestClassifyHTTPStatus(t *testing.T) {
	for status, want := range map[int]drivers.Code{
		404: drivers.NotFound, 401: drivers.PermissionDenied, 403: drivers.PermissionDenied,
		408: drivers.Transient, 429: drivers.Transient, 500: drivers.Transient, 503: drivers.Transient,
		400: drivers.Permanent, 409: drivers.Permanent, 200: drivers.Unknown,
	} {
		if got := drivers.ClassifyHTTPStatus(status); got != want {
			t.Errorf("ClassifyHTTPStatus(%d) = %v, want %v", status, got, want)
		}
	}
}
