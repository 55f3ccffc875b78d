package http

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/sources"
)

func open(t *testing.T, raw string, opts sources.Options) *Source {
	t.Helper()
	s, err := sources.Open(raw, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", raw, err)
	}
	return s.(*Source)
}

func TestDump(t *testing.T) {
	body := bytes.Repeat([]byte(`{"id":1,"name":"Zoë"},`), 50_000)
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Path != "/persons" {
			nethttp.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	s := open(t, srv.URL+"/persons", sources.Options{})
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Dump(context.Background(), &out); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("got %d bytes, want %d", out.Len(), len(body))
	}
	if _, ok := sources.Source(s).(sources.Restorer); ok {
		t.Fatal("the http source must not be a Restorer")
	}

	err := open(t, srv.URL+"/nothing", sources.Options{}).Dump(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("Dump of a missing path = %v, want an error naming the status", err)
	}
}

// The server promises more bytes than it sends, then drops the connection.
func TestDumpTruncatedBody(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(nethttp.StatusOK)
		_, _ = w.Write(make([]byte, 40_000))
		w.(nethttp.Flusher).Flush()
		conn, _, err := w.(nethttp.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := open(t, srv.URL, sources.Options{}).Dump(context.Background(), &out)
	if err == nil {
		t.Fatalf("Dump of a truncated body succeeded with %d bytes", out.Len())
	}
}

type roundTripper func(*nethttp.Request) (*nethttp.Response, error)

func (f roundTripper) RoundTrip(r *nethttp.Request) (*nethttp.Response, error) { return f(r) }

// A transport that hands over a short body without an error is still caught.
func TestDumpShortBodyWithoutTransportError(t *testing.T) {
	s := open(t, "http://example.invalid/data", sources.Options{})
	s.client = &nethttp.Client{Transport: roundTripper(func(r *nethttp.Request) (*nethttp.Response, error) {
		return &nethttp.Response{StatusCode: 200, Status: "200 OK", ContentLength: 100, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 50))), Request: r}, nil
	})}
	err := s.Dump(context.Background(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "50 of 100 bytes") {
		t.Fatalf("Dump = %v, want a short-body error", err)
	}
}

func TestBasicAuthAndSecrets(t *testing.T) {
	var gotUser, gotPw string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		gotUser, gotPw, _ = r.BasicAuth()
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	withUser := strings.Replace(srv.URL, "http://", "http://reader@", 1)
	if _, err := sources.Open(strings.Replace(srv.URL, "http://", "http://reader:url-pw@", 1), sources.Options{}); !errors.Is(err, sources.ErrPasswordInURL) {
		t.Errorf("a URL with a password: %v, want it refused", err)
	}

	for _, c := range []struct {
		opts sources.Options
		want string
	}{{sources.Options{Password: "opt-pw"}, "opt-pw"}} {
		s := open(t, withUser+"/x?token=tok-secret", c.opts)
		if err := s.Dump(context.Background(), io.Discard); err != nil {
			t.Fatalf("Dump: %v", err)
		}
		if gotUser != "reader" || gotPw != c.want {
			t.Errorf("server saw %q/%q, want reader/%s", gotUser, gotPw, c.want)
		}
		if d := s.Describe(); strings.Contains(d, "pw") || strings.Contains(d, "tok-secret") || !strings.Contains(d, "reader@") {
			t.Errorf("Describe = %q", d)
		}
	}

	// A connection error must not repeat the password or the query.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	err = open(t, "http://reader@"+addr+"/x?token=tok-secret", sources.Options{Password: "url-pw"}).Dump(context.Background(), io.Discard)
	if err == nil || strings.Contains(err.Error(), "url-pw") || strings.Contains(err.Error(), "tok-secret") {
		t.Fatalf("Dump = %v, want a connection error without secrets", err)
	}
}

func TestDumpCancelled(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = w.Write([]byte("start"))
		w.(nethttp.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	w := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
	err := open(t, srv.URL, sources.Options{}).Dump(ctx, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dump = %v, want context.Canceled", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestOpenRejects(t *testing.T) {
	for raw, opts := range map[string]sources.Options{
		"http:/no-host":        {},
		"https://h/x":          {Format: "plain"},
		"http://h/x?a=b":       {CreateDatabase: true},
		"http:opaque-nonsense": {},
	} {
		if _, err := sources.Open(raw, opts); err == nil {
			t.Errorf("Open(%q, %+v) succeeded", raw, opts)
		}
	}
}
