package drivers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Code classifies a storage error. Drivers decide the code once, where they
// map their SDK's errors; callers branch on it with Code or errors.Is.
type Code int

const (
	// Unknown is the code of an error no driver classified. Callers treat it
	// like Permanent.
	Unknown Code = iota
	// NotFound: the object, upload or bucket does not exist.
	NotFound
	// PermissionDenied: the credentials were refused or lack a permission.
	// Retrying does not help.
	PermissionDenied
	// Transient: worth retrying after a pause (5xx, throttling, timeouts,
	// connection resets).
	Transient
	// Permanent: the request itself is wrong; retrying cannot help.
	Permanent
)

var codeNames = [...]string{"Unknown", "NotFound", "PermissionDenied", "Transient", "Permanent"}

func (c Code) String() string {
	if c < 0 || int(c) >= len(codeNames) {
		return fmt.Sprintf("Code(%d)", int(c))
	}
	return codeNames[c]
}

// Sentinels for errors.Is: errors.Is(err, drivers.ErrNotFound) holds for any
// error whose code is NotFound.
var (
	ErrNotFound         error = &Error{Code: NotFound}
	ErrPermissionDenied error = &Error{Code: PermissionDenied}
	ErrTransient        error = &Error{Code: Transient}
	ErrPermanent        error = &Error{Code: Permanent}
)

// Error is the classified error every Bucket method returns.
type Error struct {
	Code Code
	// Op is the operation that failed ("put part 3", "complete", "stat").
	Op string
	// Key is the object key the operation was about, if any.
	Key string
	// Err is the cause. It must not carry a credential: drivers redact before
	// wrapping.
	Err error
	// Attempts and Elapsed say how long the portable layer retried before
	// giving up (zero when the first attempt was the last).
	Attempts int
	Elapsed  time.Duration
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Key != "" {
		msg += fmt.Sprintf(" %q", e.Key)
	}
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	if msg == "" {
		msg = e.Code.String()
	}
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (gave up after %d attempts in %s)", e.Attempts, e.Elapsed.Round(time.Millisecond))
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinels by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Key == "" && t.Err == nil && t.Attempts == 0 && t.Code == e.Code
}

// Errorf builds a classified error about key from a cause.
func Errorf(code Code, op, key string, cause error) error {
	return &Error{Code: code, Op: op, Key: key, Err: cause}
}

// CodeOf reports the class of err: the code of the outermost *Error in its
// chain, Transient for network failures and deadlines nobody classified,
// Permanent for cancellation, and Unknown otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return Unknown
	}
	var e *Error
	if errors.As(err, &e) && e.Code != Unknown {
		return e.Code
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return Permanent
	}
	return ClassifyNetwork(err)
}

// ClassifyNetwork is the part of every driver's mapping that does not depend
// on the SDK: a cancelled context is final, a timeout or a broken connection
// is worth retrying. It returns Unknown when err is none of those.
func ClassifyNetwork(err error) Code {
	switch {
	case errors.Is(err, context.Canceled):
		return Permanent
	case errors.Is(err, context.DeadlineExceeded):
		return Transient
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Transient
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return Transient
	}
	return Unknown
}

// ClassifyHTTPStatus maps an HTTP status code to a Code, for drivers whose SDK
// reports one.
func ClassifyHTTPStatus(status int) Code {
	switch {
	case status == 404:
		return NotFound
	case status == 401 || status == 403:
		return PermissionDenied
	case status == 408 || status == 429 || status >= 500:
		return Transient
	case status >= 400:
		return Permanent
	}
	return Unknown
}
