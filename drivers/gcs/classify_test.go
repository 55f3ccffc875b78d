package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"cloud.google.com/go/auth"
	gcstorage "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/dbarchive/dbarchive/drivers"
)

func TestClassify(t *testing.T) {
	tokenErr := func(status int) error {
		return &auth.Error{Response: &http.Response{StatusCode: status}, Body: []byte(`{"error":"x"}`)}
	}
	tests := []struct {
		name string
		err  error
		want drivers.Code
	}{
		{"object not found", gcstorage.ErrObjectNotExist, drivers.NotFound},
		{"object not found wrapped as the SDK does", fmt.Errorf("%w: %w", gcstorage.ErrObjectNotExist, &googleapi.Error{Code: 404}), drivers.NotFound},
		{"bucket not found", gcstorage.ErrBucketNotExist, drivers.NotFound},
		{"http 404", &googleapi.Error{Code: 404}, drivers.NotFound},
		{"http 401", &googleapi.Error{Code: 401}, drivers.PermissionDenied},
		{"http 403", &googleapi.Error{Code: 403}, drivers.PermissionDenied},
		{"http 408", &googleapi.Error{Code: 408}, drivers.Transient},
		{"http 429", &googleapi.Error{Code: 429}, drivers.Transient},
		{"http 500", &googleapi.Error{Code: 500}, drivers.Transient},
		{"http 503 wrapped", fmt.Errorf("compose: %w", &googleapi.Error{Code: 503}), drivers.Transient},
		{"http 400", &googleapi.Error{Code: 400}, drivers.Permanent},
		{"http 409", &googleapi.Error{Code: 409}, drivers.Permanent},
		{"http 412", &googleapi.Error{Code: 412}, drivers.Permanent},
		{"http 416", &googleapi.Error{Code: 416}, drivers.Permanent},
		{"token refused (invalid_grant)", tokenErr(400), drivers.PermissionDenied},
		{"token unauthorized", tokenErr(401), drivers.PermissionDenied},
		{"token endpoint down", tokenErr(503), drivers.Transient},
		{"cancelled", context.Canceled, drivers.Permanent},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), drivers.Transient},
		{"connection refused", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, drivers.Transient},
		{"connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), drivers.Transient},
		{"body cut short", io.ErrUnexpectedEOF, drivers.Transient},
		{"anything else", errors.New("storage: invalid Content-Range"), drivers.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("stat", "a/key", tc.err)
			if got := drivers.CodeOf(err); got != tc.want {
				t.Fatalf("CodeOf(classify(%v)) = %v, want %v", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("classify dropped the cause: %v", err)
			}
			if want := `stat "a/key"`; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
	if classify("stat", "k", nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
