package sources

import (
	"net/url"
	"strings"
	"testing"
)

// TestRegisterRefusesIncompleteRegistrations: a source type needs an opener
// and at least one non-empty scheme; a mistake here is a programming error
// caught at start-up.
func TestRegisterRefusesIncompleteRegistrations(t *testing.T) {
	opener := func(*url.URL, Options) (Source, error) { return nil, nil }
	for name, call := range map[string]func(){
		"nil opener":   func() { Register(nil, "registertest-nil") },
		"no scheme":    func() { Register(opener) },
		"empty scheme": func() { Register(opener, "") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			call()
		})
	}
	for _, s := range Schemes() {
		if s == "registertest-nil" || s == "" {
			t.Fatalf("a refused registration left scheme %q behind", s)
		}
	}
}

// TestOpenWithoutScheme: a source URL without a scheme says so, listing the
// schemes there are.
func TestOpenWithoutScheme(t *testing.T) {
	Register(func(*url.URL, Options) (Source, error) { return nil, nil }, "openscheme-test")
	for _, raw := range []string{"localhost/db", ":rest"} {
		_, err := Open(raw, Options{})
		if err == nil || !strings.Contains(err.Error(), "missing scheme") || !strings.Contains(err.Error(), "openscheme-test") {
			t.Errorf("Open(%q) = %v, want a missing scheme error listing the known schemes", raw, err)
		}
	}
}
