package emulators

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
)

// Proxy is the one fault injector of the tests: an HTTP reverse proxy put
// between a driver and its emulator (gofakes3, the IAM-fronted ibmcos,
// fake-gcs-server, Azurite). Requests pass through untouched until a Fault
// is armed; an armed fault picks requests by method, by a predicate and by
// call number, and answers them with a status, resets the connection, cuts
// the response body, or stalls. It is safe for concurrent use.
type Proxy struct {
	URL string // the proxy's base URL, http://127.0.0.1:port

	target *url.URL
	rp     *httputil.ReverseProxy
	done   chan struct{} // closed when the test ends: releases stalls

	mu       sync.Mutex
	faults   []*Fault
	injected int
}

// Action is what an armed Fault does to a request.
type Action int

const (
	// Status answers with Fault.Status and an error body, without passing
	// the request on.
	Status Action = iota + 1
	// Reset closes the connection with an RST before any answer.
	Reset
	// Stall never answers: the endpoint is frozen.
	Stall
	// CutBody passes the request on, sends the answer's headers and
	// Fault.After bytes of its body, then resets the connection.
	CutBody
	// StallBody is CutBody that goes silent instead of resetting.
	StallBody
)

// Fault selects requests and says what to do to them.
type Fault struct {
	// Method selects requests by HTTP method ("" for any).
	Method string
	// Match, when set, must also accept the request.
	Match func(*http.Request) bool
	// Skip lets this many selected requests through first: Skip 2 fails
	// the third call.
	Skip int
	// Times is how many selected requests fail (0: one).
	Times int
	Action
	// Status is the HTTP status of Action Status (default 503).
	Status int
	// After is the number of body bytes CutBody and StallBody send.
	After int64

	seen, fired int
}

// NewProxy starts a proxy to target (scheme://host:port) that stops when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		t.Fatalf("fault proxy: bad target %q", target)
	}
	p := &Proxy{target: &url.URL{Scheme: u.Scheme, Host: u.Host}, done: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			pr.Out.Host = pr.In.Host // emulators that route by Host see the client's
		},
		// Fail the request visibly instead of logging to stderr.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(p.done) }) // runs first: stalled handlers return
	p.URL = srv.URL
	return p
}

// WithProxy puts a new proxy in front of cfg's endpoint and returns the
// config pointed at the proxy.
func WithProxy(t testing.TB, cfg drivers.Config) (drivers.Config, *Proxy) {
	t.Helper()
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("fault proxy: config %s has no endpoint URL", cfg.Name)
	}
	p := NewProxy(t, cfg.Endpoint)
	pu, _ := url.Parse(p.URL)
	u.Host = pu.Host
	cfg.Endpoint = u.String()
	return cfg, p
}

// Inject arms f and returns it. Faults are consulted in the order they were
// armed; a request is taken by the first armed fault that selects it.
func (p *Proxy) Inject(f Fault) *Fault {
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &f)
	return &f
}

// Clear disarms every fault and sets the count of injected ones to zero.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.injected = nil, 0
}

// Injected is the number of requests a fault was applied to.
func (p *Proxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// Pending is the number of fault applications still armed.
func (p *Proxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.faults {
		n += f.Times - f.fired
	}
	return n
}

// pick returns the fault to apply to r, or nil.
func (p *Proxy) pick(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.fired >= f.Times || (f.Method != "" && f.Method != r.Method) || (f.Match != nil && !f.Match(r)) {
			continue
		}
		if f.seen < f.Skip {
			f.seen++
			return nil
		}
		f.fired++
		p.injected++
		return f
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.pick(r)
	if f == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch f.Action {
	case Status:
		// Read the request first, as a store that fails after receiving it
		// would, so the client sees an answer and not a broken write.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.Status)
		_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected fault</Message></Error>`, statusCode(f.Status))
	case Reset:
		conn := hijack(w)
		resetClose(conn)
	case Stall:
		p.stall(r)
	case CutBody, StallBody:
		p.cut(w, r, f)
	}
}

// statusCode is the S3/Azure error code that goes with an injected status.
func statusCode(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusUnauthorized:
		return "AuthenticationFailed"
	}
	return "InternalError"
}

func (p *Proxy) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-p.done:
	}
}

// cut forwards r, then writes the answer's headers and f.After bytes of its
// body straight to the connection, and resets or stalls.
func (p *Proxy) cut(w http.ResponseWriter, r *http.Request, f *Fault) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.RequestURI = ""
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	conn := hijack(w)
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Del("Transfer-Encoding")
	if resp.ContentLength >= 0 {
		resp.Header.Set("Content-Length", fmt.Sprint(resp.ContentLength))
	}
	_ = resp.Header.Write(bw)
	bw.WriteString("\r\n")
	_, _ = io.CopyN(bw, resp.Body, f.After)
	_ = bw.Flush()
	if f.Action == StallBody {
		p.stall(r)
	}
	resetClose(conn)
}

func hijack(w http.ResponseWriter) net.Conn {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("emulators: response writer cannot be hijacked; faults need HTTP/1.1")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic("emulators: hijack: " + err.Error())
	}
	return conn
}

// resetClose closes conn with an RST (linger 0) rather than a FIN, so the
// client reads "connection reset by peer".
func resetClose(conn net.Conn) {
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
