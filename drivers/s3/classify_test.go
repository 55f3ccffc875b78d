package s3

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dbarchive/dbarchive/drivers"
)

// serviceError builds what the SDK returns for an error answer: an operation
// error around a response error with the status, around the API error.
func serviceError(status int, apiErr error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      apiErr,
		},
	}}
}

// sendError builds what the SDK returns when a request got no answer: the
// send error inside a response error with an empty response (status 0).
func sendError(cause error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "UploadPart", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{}},
			Err:      &smithyhttp.RequestSendError{Err: cause},
		},
	}}
}

func TestClassify(t *testing.T) {
	generic := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	cases := []struct {
		name string
		err  error
		want drivers.Code
	}{
		{"NoSuchKey", serviceError(404, &types.NoSuchKey{}), drivers.NotFound},
		{"HEAD 404 NotFound", serviceError(404, &types.NotFound{}), drivers.NotFound},
		{"NoSuchUpload", serviceError(404, &types.NoSuchUpload{}), drivers.NotFound},
		{"NoSuchBucket", serviceError(404, generic("NoSuchBucket")), drivers.NotFound},
		{"AccessDenied", serviceError(403, generic("AccessDenied")), drivers.PermissionDenied},
		{"InvalidAccessKeyId", serviceError(403, generic("InvalidAccessKeyId")), drivers.PermissionDenied},
		{"SignatureDoesNotMatch", serviceError(403, generic("SignatureDoesNotMatch")), drivers.PermissionDenied},
		{"SlowDown", serviceError(503, generic("SlowDown")), drivers.Transient},
		{"RequestTimeout is a 400 but transient", serviceError(400, generic("RequestTimeout")), drivers.Transient},
		{"InternalError", serviceError(500, generic("InternalError")), drivers.Transient},
		{"InvalidRange", serviceError(416, generic("InvalidRange")), drivers.Permanent},
		{"unknown code, status 503", serviceError(503, generic("ServiceUnavailable")), drivers.Transient},
		{"unknown code, status 403", serviceError(403, generic("AllAccessDisabled")), drivers.PermissionDenied},
		{"unknown code, status 400", serviceError(400, generic("InvalidPart")), drivers.Permanent},
		{"connection reset", sendError(reset), drivers.Transient},
		{"closed connection", sendError(&net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}), drivers.Transient},
		{"bare send error", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: reset}}, drivers.Transient},
		{"connection refused", sendError(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), drivers.Transient},
		{"cancelled", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.Canceled}}, drivers.Permanent},
		{"deadline", sendError(context.DeadlineExceeded), drivers.Transient},
		{"anything else", errors.New("serialization failed"), drivers.Permanent},
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
			if msg := err.Error(); msg == "" || !strings.Contains(msg, "some/key") {
				t.Errorf("error %q does not name the key", msg)
			}
		})
	}
	if classify("op", "k", nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
