package drivers

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// RetryPolicy governs the retries the portable Bucket makes of every call.
// Only errors of class Transient are retried; Permanent, NotFound,
// PermissionDenied and Unknown ones return at once.
type RetryPolicy struct {
	// InitialBackoff and MaxBackoff bound the exponential pause between
	// attempts; each pause is jittered by ±50%.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Budget is how long one call may keep retrying, measured from its first
	// attempt: no attempt starts after it. It is the longest outage of the
	// endpoint a call rides out.
	Budget time.Duration
	// MaxAttempts caps the attempts per call (0: no cap; the budget rules).
	MaxAttempts int
}

// DefaultRetry rides out two minutes of an unavailable endpoint (a gateway
// restart, a burst of 503 SlowDown) before a call fails: the README promises
// at least 60 s, and a nightly backup that fails costs more than one that
// waits. TestDefaultRetryRidesOutAMinute checks the promise.
var DefaultRetry = RetryPolicy{InitialBackoff: 250 * time.Millisecond, MaxBackoff: 15 * time.Second, Budget: 2 * time.Minute}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultRetry.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultRetry.MaxBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Budget <= 0 {
		p.Budget = DefaultRetry.Budget
	}
	return p
}

// Timeouts bound every storage request, so that an endpoint that stops
// answering (a frozen gateway, a SIGSTOPped server, a dropped route) fails
// the request as Transient within a known time instead of hanging a backup
// that may hold a database connection open.
type Timeouts struct {
	// Connect bounds establishing a TCP connection.
	Connect time.Duration
	// TLSHandshake bounds the TLS handshake.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for a response's headers once the
	// request is written.
	ResponseHeader time.Duration
	// Idle bounds the time one read or write on a connection, or one Read of
	// an object's body, may go without progress. A part upload of any size
	// stays alive as long as bytes keep moving.
	Idle time.Duration
}

// DefaultTimeouts are generous for a slow link and short against a frozen
// one. An S3 CompleteMultipartUpload of many parts answers its headers
// within seconds and then keeps the connection alive while it assembles.
var DefaultTimeouts = Timeouts{Connect: 15 * time.Second, TLSHandshake: 15 * time.Second, ResponseHeader: time.Minute, Idle: time.Minute}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultTimeouts.Connect
	}
	if t.TLSHandshake <= 0 {
		t.TLSHandshake = DefaultTimeouts.TLSHandshake
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = DefaultTimeouts.ResponseHeader
	}
	if t.Idle <= 0 {
		t.Idle = DefaultTimeouts.Idle
	}
	return t
}

// NewTransport returns the HTTP transport every HTTP driver uses: the
// standard one with cfg's CA bundle and cfg.Timeouts applied (see
// ConfigureTransport). A bad CA bundle is a ConfigError.
func (c Config) NewTransport() (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if err := c.ConfigureTransport(tr); err != nil {
		return nil, err
	}
	return tr, nil
}

// ConfigureTransport applies cfg's CA bundle and timeouts to tr, for drivers
// whose SDK builds its own transport. Connections get an idle deadline on
// every read and write, which also bounds a request body that stops
// draining and a response that never starts.
func (c Config) ConfigureTransport(tr *http.Transport) error {
	pool, err := c.CertPool()
	if err != nil {
		return err
	}
	t := c.Timeouts.withDefaults()
	if pool != nil {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: conn, idle: t.Idle}, nil
	}
	tr.TLSHandshakeTimeout = t.TLSHandshake
	tr.ResponseHeaderTimeout = t.ResponseHeader
	// The pool drops idle connections before their read deadline would.
	tr.IdleConnTimeout = t.Idle / 2
	return nil
}

// idleConn moves its deadline forward on every read and write: a transfer
// that keeps moving never times out, one that stops does after idle.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
