package azure

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/dbarchive/dbarchive/drivers"
)

// classify is the one place SDK errors become drivers errors: it decides the
// code and replaces the cause by a redacted one (see redact). op and key say
// what failed.
func classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return drivers.Errorf(codeOf(err), op, key, redact(err))
}

// codeOf decides the class: the service's error code first (it is the most
// precise), then the HTTP status, then the network, and Permanent for
// anything else, since retrying what nobody understood only hides it.
func codeOf(err error) drivers.Code {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch bloberror.Code(re.ErrorCode) {
		case bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound:
			return drivers.NotFound
		case bloberror.AuthenticationFailed, bloberror.AuthorizationFailure,
			bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationProtocolMismatch,
			bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch,
			bloberror.AuthorizationSourceIPMismatch, bloberror.InsufficientAccountPermissions,
			bloberror.AccountIsDisabled:
			return drivers.PermissionDenied
		case bloberror.ServerBusy, bloberror.OperationTimedOut, bloberror.InternalError,
			bloberror.ContainerBeingDeleted:
			return drivers.Transient
		}
		if c := drivers.ClassifyHTTPStatus(re.StatusCode); c != drivers.Unknown {
			return c
		}
	}
	if c := drivers.ClassifyNetwork(err); c != drivers.Unknown {
		return c
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The connection ended in the middle of a body.
		return drivers.Transient
	}
	return drivers.Permanent
}

// serviceError is what remains of an azcore.ResponseError: the method,
// status and the service's error code. The request URL (whose query string
// may hold a SAS token) and the response body (whose message may quote the
// string that was signed) are dropped, and no SDK type stays in the chain.
type serviceError struct {
	Method string
	Status int
	Code   string
}

func (e *serviceError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d %s", e.Method, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	return msg
}

// redact returns a cause fit to carry in an error: a ResponseError becomes a
// serviceError, a *url.Error keeps its cause (so errors.Is still finds
// context.Canceled or a syscall error) but loses its query string, and
// anything else is kept as is.
func redact(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		se := &serviceError{Status: re.StatusCode, Code: re.ErrorCode}
		if re.RawResponse != nil && re.RawResponse.Request != nil {
			se.Method = re.RawResponse.Request.Method
		}
		if se.Method == "" {
			se.Method = "request"
		}
		return se
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactedURL(ue.URL), Err: ue.Err}
	}
	return err
}

// withheld replaces a cause whose text still carried a credential.
var withheld = errors.New("request failed; details withheld because they contained a credential")

// scrub is the last line of defence: when err's text contains any of the
// secrets, the cause is replaced by a fixed message, keeping the code, the
// operation and the key.
func scrub(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	text := err.Error()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			var de *drivers.Error
			if errors.As(err, &de) {
				return drivers.Errorf(de.Code, de.Op, de.Key, withheld)
			}
			return drivers.Errorf(drivers.CodeOf(err), "", "", withheld)
		}
	}
	return err
}
