package sources_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/sources"
	_ "github.com/dbarchive/dbarchive/sources/all"
)

// optPassword stands for a password given through the environment
// (DBARCHIVE_SOURCE_PASSWORD); the fuzzer cannot guess it.
const optPassword = "opt-pw-Zq9-not-in-any-url"

// FuzzOpen: opening any source URL never panics and never runs anything,
// and neither the error nor Describe of the result repeats a password, be
// it the option's or one inside the URL (when that password is long enough
// to be told apart from the rest of the URL).
func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		"postgres://alice:s3cret-pw@db.example:5432/sales?sslmode=require",
		"postgresql://u@h/db?application_name=x", "postgres://u@h/", "postgres:db",
		"mysql://root:hunter2-pw@127.0.0.1:3306/shop", "mysql://u@h/a/b",
		"http://user:basic-pw@example.com/persons", "https://example.com/x?y=1",
		"exec:mongodump --archive --uri mongodb://u:mongo-pw@h/db", "exec:sh -c 'echo \"a b\"'", "exec:", "exec:'unterminated",
		"EXEC:true", "oracle://x", ":nothing",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, withPassword bool) {
		opts := sources.Options{}
		if withPassword {
			opts.Password = optPassword
		}
		src, err := sources.Open(raw, opts)
		secrets := []string{optPassword}
		if pw := urlPassword(raw); pw != "" {
			secrets = append(secrets, pw)
		}
		var texts []string
		if err != nil {
			texts = append(texts, err.Error())
		} else {
			texts = append(texts, src.Describe())
			if src.Type() == "" {
				t.Fatalf("Open(%q): a source without a type", raw)
			}
		}
		for _, s := range secrets {
			for _, text := range texts {
				if strings.Contains(text, s) {
					t.Fatalf("Open(%q): %q repeats the password %q", raw, text, s)
				}
			}
		}
	})
}

// urlPassword returns the password of raw's user info when it is long and
// distinctive: at least 6 bytes, and appearing nowhere in the URL outside the
// user info, escaped or not (else a database named like it would count).
func urlPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	pw, ok := u.User.Password()
	if !ok || len(pw) < 6 {
		return ""
	}
	rest := *u
	rest.User = nil
	for _, s := range []string{rest.String(), rest.Host, rest.Path, rest.RawQuery, rest.Fragment, rest.Opaque, rest.Scheme, u.User.Username()} {
		if strings.Contains(s, pw) {
			return ""
		}
		if un, err := url.PathUnescape(s); err == nil && strings.Contains(un, pw) {
			return ""
		}
		if un, err := url.QueryUnescape(s); err == nil && strings.Contains(un, pw) {
			return ""
		}
	}
	return pw
}
