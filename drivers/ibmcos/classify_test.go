package ibmcos

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/IBM/ibm-cos-sdk-go/aws/awserr"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials/ibmiam/token"
	"github.com/IBM/ibm-cos-sdk-go/aws/request"

	"github.com/dbarchive/dbarchive/drivers"
)

func TestClassify(t *testing.T) {
	answer := func(status int, code string) error {
		return awserr.NewRequestFailure(awserr.New(code, "message", nil), status, "req-1")
	}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	cases := []struct {
		name string
		err  error
		want drivers.Code
	}{
		{"NoSuchKey", answer(404, "NoSuchKey"), drivers.NotFound},
		{"HEAD 404 NotFound", answer(404, "NotFound"), drivers.NotFound},
		{"NoSuchUpload", answer(404, "NoSuchUpload"), drivers.NotFound},
		{"NoSuchBucket", answer(404, "NoSuchBucket"), drivers.NotFound},
		{"AccessDenied", answer(403, "AccessDenied"), drivers.PermissionDenied},
		{"InvalidAccessKeyId", answer(403, "InvalidAccessKeyId"), drivers.PermissionDenied},
		{"SignatureDoesNotMatch", answer(403, "SignatureDoesNotMatch"), drivers.PermissionDenied},
		{"SlowDown", answer(503, "SlowDown"), drivers.Transient},
		{"RequestTimeout is a 400 but transient", answer(400, "RequestTimeout"), drivers.Transient},
		{"InternalError", answer(500, "InternalError"), drivers.Transient},
		{"InvalidRange", answer(416, "InvalidRange"), drivers.Permanent},
		{"unknown code, status 503", answer(503, "ServiceUnavailable"), drivers.Transient},
		{"unknown code, status 401", answer(401, "Unauthorized"), drivers.PermissionDenied},
		{"unknown code, status 400", answer(400, "InvalidPart"), drivers.Permanent},
		{"connection reset", awserr.New(request.ErrCodeRequestError, "send request failed", reset), drivers.Transient},
		{"request error without cause", awserr.New(request.ErrCodeRequestError, "send request failed", nil), drivers.Transient},
		{"cancelled", awserr.New(request.CanceledErrorCode, "request context canceled", context.Canceled), drivers.Permanent},
		{"deadline", awserr.New(request.CanceledErrorCode, "request context canceled", context.DeadlineExceeded), drivers.Transient},
		{"token exchange refused", awserr.New("TokenManagerRetrieveError", "error retrieving the token",
			awserr.New("ErrFetchingIAMToken", "error fetching token", &token.Error{ErrorCode: "BXNIM0415E"})), drivers.PermissionDenied},
		{"token service down", awserr.New("TokenManagerRetrieveError", "error retrieving the token",
			awserr.New("ErrFetchingIAMToken", "error fetching token", errors.New("Response: Bad Status Code: 503"))), drivers.Transient},
		{"token endpoint unreachable", awserr.New("TokenManagerRetrieveError", "error retrieving the token",
			awserr.New("ErrFetchingIAMToken", "error fetching token", reset)), drivers.Transient},
		{"plain error", errors.New("serialization failed"), drivers.Permanent},
		{"plain network error", reset, drivers.Transient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("op", "some/key", tc.err)
			if got := drivers.CodeOf(err); got != tc.want {
				t.Fatalf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("classify dropped the cause %v", tc.err)
			}
			if !strings.Contains(err.Error(), "some/key") {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
	if classify("op", "k", nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
