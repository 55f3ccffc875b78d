package gcs

import (
	"errors"
	"io"
	"net/http"

	"cloud.google.com/go/auth"
	gcstorage "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/dbarchive/dbarchive/drivers"
)

// classify maps an SDK error to a drivers error class. It is the one place
// that looks at SDK error types. The driver talks HTTP (JSON and XML APIs)
// only, so gRPC status codes never reach it.
func classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return drivers.Errorf(code(err), op, key, err)
}

func code(err error) drivers.Code {
	switch {
	case errors.Is(err, gcstorage.ErrObjectNotExist), errors.Is(err, gcstorage.ErrBucketNotExist):
		return drivers.NotFound
	case errors.Is(err, io.ErrUnexpectedEOF):
		// A response body cut short: the connection broke mid-read.
		return drivers.Transient
	}
	if status := httpStatus(err); status != 0 {
		if c := drivers.ClassifyHTTPStatus(status); c != drivers.Unknown {
			return c
		}
	}
	if c := drivers.ClassifyNetwork(err); c != drivers.Unknown {
		return c
	}
	return drivers.Permanent
}

// httpStatus returns the HTTP status of a failed storage request or token
// fetch, or 0 when err carries none. apierror.APIError unwraps to the
// googleapi.Error it wraps, so errors.As finds both.
func httpStatus(err error) int {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code
	}
	var aerr *auth.Error
	if errors.As(err, &aerr) && aerr.Response != nil {
		// The token endpoint answers 400 invalid_grant for a revoked or
		// unknown key: a credential problem, not a bad request.
		if aerr.Response.StatusCode == http.StatusBadRequest {
			return http.StatusUnauthorized
		}
		return aerr.Response.StatusCode
	}
	return 0
}
