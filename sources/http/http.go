// Package http is the source for a document served over HTTP(S): Dump GETs
// the URL and streams the body, for services that export their data that way
// (the article's sample database serves its rows as JSON at /persons).
//
// It is not a Restorer: there is no standard way to put such a document
// back, so a restore writes it to a file or stdout. The package must never
// report a cut-short body as a dump: a non-2xx status, a body shorter than
// its Content-Length or a broken connection is an error.
package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"

	"github.com/dbarchive/dbarchive/sources"
)

func init() { sources.Register(Open, "http", "https") }

// errorBodyLimit caps how much of an error response's body an error quotes.
const errorBodyLimit = 256

// Source is one URL.
type Source struct {
	u      *url.URL // without user info: credentials go in a header
	full   *url.URL // as given, for the password and Describe
	user   string
	opts   sources.Options
	client *nethttp.Client
}

var _ sources.Source = (*Source)(nil)

// Open builds a source from an http(s) URL. The URL's user name with
// Options.Password/PasswordFile becomes basic authentication (sources.Open
// refuses a password inside the URL).
func Open(u *url.URL, opts sources.Options) (sources.Source, error) {
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("http source URL: want http(s)://host/path")
	}
	if opts.CreateDatabase || opts.Format != "" {
		return nil, errors.New("http source: format and create-database options do not apply")
	}
	s := &Source{u: stripUser(u), full: u, opts: opts, client: nethttp.DefaultClient}
	if u.User != nil {
		s.user = u.User.Username()
	}
	return s, nil
}

func stripUser(u *url.URL) *url.URL {
	c := *u
	c.User = nil
	return &c
}

func (s *Source) Type() string     { return "http" }
func (s *Source) Database() string { return "" }

// Describe is the URL without its password and with query values hidden:
// signed URLs carry their credential there.
func (s *Source) Describe() string {
	c := *s.full
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			q[k] = []string{"redacted"}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// Check validates the password options; it does not connect.
func (s *Source) Check(context.Context) error {
	_, err := s.opts.ResolvePassword(s.full)
	if err != nil {
		return fmt.Errorf("http source %s: %w", s.Describe(), err)
	}
	return nil
}

// request builds the GET, with basic authentication when a password is set.
func (s *Source) request(ctx context.Context) (*nethttp.Request, error) {
	pw, err := s.opts.ResolvePassword(s.full)
	if err != nil {
		return nil, fmt.Errorf("http source %s: %w", s.Describe(), err)
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, s.u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("http source %s: %w", s.Describe(), err)
	}
	if pw != "" || s.user != "" {
		req.SetBasicAuth(s.user, pw)
	}
	return req, nil
}

// Dump GETs the URL and copies the body to w. It fails on a non-2xx status,
// naming it, and on a body that ends before its Content-Length.
func (s *Source) Dump(ctx context.Context, w io.Writer) error {
	req, err := s.request(ctx)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, query and all: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("http source GET %s: %w", s.Describe(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		msg := fmt.Sprintf("http source GET %s: %s", s.Describe(), resp.Status)
		if t := strings.TrimSpace(string(snippet)); t != "" {
			msg += ": " + t
		}
		return errors.New(msg)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return fmt.Errorf("http source GET %s: after %d bytes: %w", s.Describe(), n, err)
	}
	// net/http already fails a short body with io.ErrUnexpectedEOF; this
	// check keeps the promise even behind a transport that does not.
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("http source GET %s: body ended after %d of %d bytes", s.Describe(), n, resp.ContentLength)
	}
	return nil
}
