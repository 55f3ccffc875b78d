package drivers

import (
	"fmt"
	"log/slog"
)

// Secret holds a credential. Every way of printing it — fmt verbs, slog, JSON,
// text marshalling — yields a redaction marker, so a secret cannot reach a log
// or an error by accident; only Reveal returns the value.
type Secret struct{ value string }

const redacted = "[redacted]"

// NewSecret wraps a credential.
func NewSecret(value string) Secret { return Secret{value: value} }

// Reveal returns the credential, for handing it to an SDK and nothing else.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// Format makes every fmt verb, %x and %q included, print the marker.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Secrets are the values of a repo's Secret, by key.
type Secrets map[string]Secret

// Get returns the secret under key, or the zero Secret.
func (s Secrets) Get(key string) Secret { return s[key] }

// Values returns the revealed values, for tests that assert no secret leaked.
func (s Secrets) Values() []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v.value != "" {
			out = append(out, v.value)
		}
	}
	return out
}

// SecretsFromStrings wraps a plain map, as read from a Kubernetes Secret or the
// environment.
func SecretsFromStrings(m map[string]string) Secrets {
	out := make(Secrets, len(m))
	for k, v := range m {
		out[k] = NewSecret(v)
	}
	return out
}
