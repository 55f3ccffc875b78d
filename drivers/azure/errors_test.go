package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/dbarchive/dbarchive/drivers"
)

// fakeSig is what a SAS signature looks like: base64 with the characters
// URL encoding changes.
const fakeSig = "AbC+dEf/GhIjKlMnOpQrStUvWxYz0123456789AbCdE="

// responseError builds the error the SDK returns for a failed request, with
// a SAS token in the request URL and a service message that quotes it, the
// worst case for a leak.
func responseError(t *testing.T, status int, code string) error {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "https://acct.blob.core.windows.net/c/key?comp=block&sv=2024-01-01&sig="+url.QueryEscape(fakeSig), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>Signature did not match: sig=%s</Message></Error>", code, fakeSig)
	resp := &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    req,
	}
	if code != "" {
		resp.Header.Set("x-ms-error-code", code)
	}
	return runtime.NewResponseError(resp)
}

func TestClassify(t *testing.T) {
	urlErr := func(cause error) error {
		return &url.Error{Op: "Put", URL: "https://acct.blob.core.windows.net/c/k?sig=" + url.QueryEscape(fakeSig), Err: cause}
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		want drivers.Code
	}{
		{"BlobNotFound", responseError(t, 404, "BlobNotFound"), drivers.NotFound},
		{"ContainerNotFound", responseError(t, 404, "ContainerNotFound"), drivers.NotFound},
		{"HEAD 404 without body", responseError(t, 404, ""), drivers.NotFound},
		{"AuthenticationFailed", responseError(t, 403, "AuthenticationFailed"), drivers.PermissionDenied},
		{"AuthorizationFailure", responseError(t, 403, "AuthorizationFailure"), drivers.PermissionDenied},
		{"AuthorizationPermissionMismatch", responseError(t, 403, "AuthorizationPermissionMismatch"), drivers.PermissionDenied},
		{"InsufficientAccountPermissions", responseError(t, 403, "InsufficientAccountPermissions"), drivers.PermissionDenied},
		{"401 without code", responseError(t, 401, ""), drivers.PermissionDenied},
		{"ServerBusy", responseError(t, 503, "ServerBusy"), drivers.Transient},
		{"OperationTimedOut", responseError(t, 500, "OperationTimedOut"), drivers.Transient},
		{"InternalError", responseError(t, 500, "InternalError"), drivers.Transient},
		{"ContainerBeingDeleted", responseError(t, 409, "ContainerBeingDeleted"), drivers.Transient},
		{"502 without code", responseError(t, 502, ""), drivers.Transient},
		{"429 without code", responseError(t, 429, ""), drivers.Transient},
		{"InvalidBlockList", responseError(t, 400, "InvalidBlockList"), drivers.Permanent},
		{"InvalidRange", responseError(t, 416, "InvalidRange"), drivers.Permanent},
		{"Md5Mismatch", responseError(t, 400, "Md5Mismatch"), drivers.Permanent},
		{"BlobAlreadyExists", responseError(t, 409, "BlobAlreadyExists"), drivers.Permanent},
		{"connection refused", urlErr(refused), drivers.Transient},
		{"connection reset", urlErr(syscall.ECONNRESET), drivers.Transient},
		{"body cut short", io.ErrUnexpectedEOF, drivers.Transient},
		{"deadline", urlErr(context.DeadlineExceeded), drivers.Transient},
		{"cancelled", urlErr(context.Canceled), drivers.Permanent},
		{"bare cancelled", context.Canceled, drivers.Permanent},
		{"unknown", errors.New("something odd"), drivers.Permanent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := classify("put part 1", "backups/x/data.zst", c.err)
			if got := drivers.CodeOf(err); got != c.want {
				t.Fatalf("code = %v, want %v (err %v)", got, c.want, err)
			}
			text := err.Error()
			if !strings.Contains(text, "put part 1") || !strings.Contains(text, "backups/x/data.zst") {
				t.Errorf("error %q does not name the operation and key", text)
			}
			for _, s := range secretForms(fakeSig) {
				if strings.Contains(text, s) {
					t.Errorf("error text carries the signature %q: %s", s, text)
				}
			}
			var re *azcore.ResponseError
			if errors.As(err, &re) {
				t.Errorf("an SDK type crosses the drivers interface: %T in the chain", re)
			}
		})
	}
}

func TestClassifyKeepsCauses(t *testing.T) {
	err := classify("stat", "k", &url.Error{Op: "Head", URL: "http://h/a/b?sig=x", Err: context.Canceled})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false; redaction must keep the cause", err)
	}
	if strings.Contains(err.Error(), "sig=") {
		t.Errorf("query string survived: %v", err)
	}
	if !strings.Contains(err.Error(), "http://h/a/b") {
		t.Errorf("redacted URL lost its path: %v", err)
	}
	se := classify("complete", "k", responseError(t, 400, "InvalidBlockList")).Error()
	if !strings.Contains(se, "PUT") || !strings.Contains(se, "400") || !strings.Contains(se, "InvalidBlockList") {
		t.Errorf("service error %q lacks method, status or code", se)
	}
	if classify("x", "k", nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}

func TestScrub(t *testing.T) {
	secrets := secretForms(fakeSig)
	leaky := drivers.Errorf(drivers.Transient, "read", "k", fmt.Errorf("proxy said: %s", url.QueryEscape(fakeSig)))
	got := scrub(leaky, secrets)
	if strings.Contains(got.Error(), url.QueryEscape(fakeSig)) || !errors.Is(got, withheld) {
		t.Fatalf("scrub kept a secret: %v", got)
	}
	if drivers.CodeOf(got) != drivers.Transient || !strings.Contains(got.Error(), `read "k"`) {
		t.Errorf("scrub lost the code, operation or key: %v (code %v)", got, drivers.CodeOf(got))
	}
	clean := drivers.Errorf(drivers.NotFound, "stat", "k", errors.New("no such blob"))
	if scrub(clean, secrets) != clean {
		t.Error("scrub replaced an error without a secret")
	}
	if len(secretForms("short")) != 0 {
		t.Error("short values would match harmless text and must not be scrubbed")
	}
}
