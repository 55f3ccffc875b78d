package archiver

// The encryption stage: between the compressor and the part writer on a
// backup, between the part reader and the decompressor on a restore. The
// stored object is one standard age file (age-encryption.org/v1), so
// `age -d -i key.txt data.zst.age | zstd -d` restores it without dbarchive.
//
// A backup needs only recipients (public keys); reading it back needs an
// identity (a private key). The job that writes backups never holds one.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// EncryptionAge is the only encryption scheme: age, one file per backup.
const EncryptionAge = "age"

// scryptRecipientText is what a manifest records for a backup encrypted to
// a passphrase: there is no public key to record.
const scryptRecipientText = "scrypt"

// Recipient is one public key a backup is encrypted to: an age X25519 key
// (age1…), a post-quantum age key (age1pq1…), an ssh-ed25519 or ssh-rsa
// public key, or a passphrase (ScryptRecipient, for the CLI). Recipients are
// not secret, except a passphrase's, which String never shows.
type Recipient struct {
	r    age.Recipient
	text string // what the manifest records: the key without its comment
}

// String is the recipient as the manifest records it: the public key
// (without an ssh key's comment), or "scrypt" for a passphrase.
func (r Recipient) String() string { return r.text }

// Fingerprint is a short name of the recipient for messages: an age key
// itself, an ssh key's SHA256 fingerprint as ssh-keygen -l prints it.
func (r Recipient) Fingerprint() string { return recipientFingerprint(r.text) }

// ParseRecipient parses one recipient as written on a command line or in a
// resource's spec: age1…, age1pq1…, "ssh-ed25519 AAAA… [comment]" or
// "ssh-rsa AAAA… [comment]". Its errors never repeat the text: a secret key
// pasted in the wrong place must not end up in a log.
func ParseRecipient(s string) (Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Recipient{}, errors.New("empty recipient")
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") || strings.Contains(s, "PRIVATE KEY"):
		return Recipient{}, errors.New("this is a secret key (an identity), not a recipient: give its public key (age-keygen -y KEYFILE prints it); a backup never needs the secret key")
	case strings.HasPrefix(s, "age1pq1"):
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return Recipient{}, errors.New("malformed post-quantum age recipient (age1pq1…): its checksum or encoding is wrong")
		}
		return Recipient{r: r, text: s}, nil
	case strings.HasPrefix(s, "age1"):
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return Recipient{}, errors.New("malformed age recipient (age1…): its checksum or encoding is wrong")
		}
		return Recipient{r: r, text: s}, nil
	case strings.HasPrefix(s, "ssh-ed25519 ") || strings.HasPrefix(s, "ssh-rsa "):
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
		if err != nil {
			return Recipient{}, errors.New("malformed ssh public key: want the one line of an id_*.pub file (ssh-ed25519 AAAA… or ssh-rsa AAAA…)")
		}
		var r age.Recipient
		switch pk.Type() {
		case ssh.KeyAlgoED25519:
			r, err = agessh.NewEd25519Recipient(pk)
		case ssh.KeyAlgoRSA:
			r, err = agessh.NewRSARecipient(pk)
		default:
			err = fmt.Errorf("ssh key type %s is not supported (want ssh-ed25519 or ssh-rsa)", pk.Type())
		}
		if err != nil {
			return Recipient{}, fmt.Errorf("ssh public key: %w", err)
		}
		// The comment is dropped: it is often an e-mail address, and the
		// key alone names the recipient.
		return Recipient{r: r, text: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))}, nil
	default:
		return Recipient{}, errors.New("not an age recipient: want age1…, age1pq1…, ssh-ed25519 AAAA… or ssh-rsa AAAA…")
	}
}

// ParseRecipients parses a recipients file in age's format: one recipient a
// line, blank lines and lines starting with # ignored. name (a file name or
// a variable) is what errors call it; an error names the line, never its
// text.
func ParseRecipients(r io.Reader, name string) ([]Recipient, error) {
	var out []Recipient
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	sc.Buffer(nil, 64<<10) // an ssh-rsa key of 16384 bits is about 2.8 KB
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("%s, line %d: not UTF-8 text", name, n)
		}
		rc, err := ParseRecipient(line)
		if err != nil {
			return nil, fmt.Errorf("%s, line %d: %w", name, n, err)
		}
		out = append(out, rc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no recipient (only blank lines and comments)", name)
	}
	return out, nil
}

// ScryptRecipient encrypts a backup to a passphrase (age's scrypt
// recipient). It must be a backup's only recipient. It is meant for a person
// at a command line; an automated backup should use public keys, so that
// the job holds nothing that decrypts.
func ScryptRecipient(passphrase string) (Recipient, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return Recipient{}, err
	}
	return Recipient{r: r, text: scryptRecipientText}, nil
}

// checkRecipients reports what age.Encrypt would refuse, before any upload
// starts: a passphrase together with other recipients, post-quantum keys
// mixed with classic ones. It returns the recipients without repeats (the
// same key inline and in a recipients file is one recipient).
func checkRecipients(rs []Recipient) ([]Recipient, error) {
	seen := map[string]bool{}
	var out []Recipient
	var scrypt, pq, classic int
	for _, r := range rs {
		if r.r == nil {
			return nil, errors.New("a recipient is empty (use ParseRecipient)")
		}
		switch {
		case r.text == scryptRecipientText:
			scrypt++
		case seen[r.text]:
			continue
		case strings.HasPrefix(r.text, "age1pq1"):
			pq++
		default:
			classic++
		}
		seen[r.text] = true
		out = append(out, r)
	}
	switch {
	case scrypt > 0 && len(out) > 1:
		return nil, errors.New("a passphrase must be a backup's only recipient (age allows nothing else beside it)")
	case pq > 0 && classic > 0:
		return nil, errors.New("post-quantum (age1pq1…) and classic recipients cannot be mixed: the backup would be no safer than the classic ones")
	}
	return out, nil
}

// newEncrypter starts the age file of a backup on w.
func newEncrypter(w io.Writer, rs []Recipient) (io.WriteCloser, error) {
	list := make([]age.Recipient, len(rs))
	for i, r := range rs {
		list[i] = r.r
	}
	enc, err := age.Encrypt(w, list...)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return enc, nil
}

// Identities are the private keys (or the passphrase) that decrypt
// encrypted backups. They are secret: String, GoString, Format, LogValue and
// the text and JSON encodings print only a redaction marker, so an identity
// cannot reach a log, an error or a status by accident. A restore job reads
// them from a mounted file with ParseIdentities and passes them in
// RestoreOptions.Identities.
type Identities struct {
	list []age.Identity
	// public is what the identities decrypt: their recipients' texts, so a
	// failed match can say which keys were tried. Not secret.
	public []string
}

const redactedIdentity = "[redacted age identities]"

func (*Identities) String() string               { return redactedIdentity }
func (*Identities) GoString() string             { return redactedIdentity }
func (*Identities) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redactedIdentity) }
func (*Identities) LogValue() slog.Value         { return slog.StringValue(redactedIdentity) }
func (*Identities) MarshalText() ([]byte, error) { return []byte(redactedIdentity), nil }

// Recipients are the public keys of the identities, for messages (a
// passphrase shows as "scrypt"). They are not secret.
func (ids *Identities) Recipients() []string {
	if ids == nil {
		return nil
	}
	return append([]string(nil), ids.public...)
}

// Len is the number of identities.
func (ids *Identities) Len() int {
	if ids == nil {
		return 0
	}
	return len(ids.list)
}

// ParseIdentities reads an identity file: age's format (AGE-SECRET-KEY-1…
// or AGE-SECRET-KEY-PQ-1… lines, blank lines and # comments ignored, as
// age-keygen writes it), or an unencrypted OpenSSH ed25519 or RSA private
// key. name (a file name or a variable) is what errors call it. An error
// names the line, never its text.
func ParseIdentities(r io.Reader, name string) (*Identities, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB: not an identity file", name)
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return parseSSHIdentity(data, name)
	}
	ids := &Identities{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("%s, line %d: %s", name, n, why) }
		switch {
		case strings.HasPrefix(line, "AGE-SECRET-KEY-PQ-1"):
			id, err := age.ParseHybridIdentity(line)
			if err != nil {
				return nil, bad("malformed post-quantum age identity (AGE-SECRET-KEY-PQ-1…): its checksum or encoding is wrong")
			}
			ids.add(id, id.Recipient().String())
		case strings.HasPrefix(line, "AGE-SECRET-KEY-1"):
			id, err := age.ParseX25519Identity(line)
			if err != nil {
				return nil, bad("malformed age identity (AGE-SECRET-KEY-1…): its checksum or encoding is wrong")
			}
			ids.add(id, id.Recipient().String())
		case strings.HasPrefix(line, "age1") || strings.HasPrefix(line, "ssh-"):
			return nil, bad("this is a recipient (a public key), not an identity: give the file age-keygen wrote, or the ssh private key")
		default:
			return nil, bad("not an age identity: want AGE-SECRET-KEY-1… lines as age-keygen writes them, or an OpenSSH private key")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(ids.list) == 0 {
		return nil, fmt.Errorf("%s holds no identity (only blank lines and comments)", name)
	}
	return ids, nil
}

// parseSSHIdentity reads an OpenSSH private key file.
func parseSSHIdentity(data []byte, name string) (*Identities, error) {
	signer, err := ssh.ParsePrivateKey(data)
	if _, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
		return nil, fmt.Errorf("%s is a passphrase-protected ssh key, which dbarchive cannot prompt for: use an age identity (age-keygen), or a copy of the key without a passphrase", name)
	}
	var id age.Identity
	if err == nil {
		id, err = agessh.ParseIdentity(data)
	}
	if err != nil {
		// The ssh package's errors name a key type or a structure, never
		// key material.
		return nil, fmt.Errorf("%s is not a usable ssh private key (want an unencrypted ed25519 or RSA key): %v", name, err)
	}
	ids := &Identities{}
	ids.add(id, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))))
	return ids, nil
}

func (ids *Identities) add(id age.Identity, public string) {
	ids.list = append(ids.list, id)
	ids.public = append(ids.public, public)
}

// LoadIdentityFile reads an identity file (see ParseIdentities), e.g. a
// Secret key mounted into a restore or verification Job, whose Restore or
// Verify then gets the result as RestoreOptions.Identities. Errors name the
// file, never its content.
func LoadIdentityFile(path string) (*Identities, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	return ParseIdentities(f, "identity file "+path)
}

// ScryptIdentities decrypt a backup encrypted to a passphrase.
func ScryptIdentities(passphrase string) (*Identities, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, err
	}
	return &Identities{list: []age.Identity{id}, public: []string{scryptRecipientText}}, nil
}

// NewIdentities wraps age identities a caller already has (tests, or a
// program that keeps its keys elsewhere).
func NewIdentities(list ...age.Identity) *Identities {
	ids := &Identities{}
	for _, id := range list {
		public := "unknown"
		if x, ok := id.(*age.X25519Identity); ok {
			public = x.Recipient().String()
		}
		ids.add(id, public)
	}
	return ids
}

// ErrIdentityRequired is the error of reading the content of an encrypted
// backup without an identity.
var ErrIdentityRequired = errors.New("the backup is encrypted and no identity was given")

// NoMatchingIdentityError is a restore whose identities decrypt none of the
// backup's recipients.
type NoMatchingIdentityError struct {
	// Recipients are the fingerprints of the keys the backup is encrypted to.
	Recipients []string
	// Tried are the fingerprints of the identities that were given.
	Tried []string
}

func (e *NoMatchingIdentityError) Error() string {
	return fmt.Sprintf("no identity given matches the backup's recipients: it is encrypted to %s; the identities given are for %s",
		strings.Join(e.Recipients, ", "), strings.Join(e.Tried, ", "))
}

// recipientFingerprint shortens a recorded recipient for messages: an age
// key is short enough to show whole, an ssh key shows as its type and
// SHA256 fingerprint (what ssh-keygen -l prints).
func recipientFingerprint(text string) string {
	if strings.HasPrefix(text, "ssh-") {
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text)); err == nil {
			return pk.Type() + " " + ssh.FingerprintSHA256(pk)
		}
	}
	if strings.HasPrefix(text, "age1pq1") && len(text) > 24 {
		// A post-quantum key is about 2000 characters.
		sum := sha256.Sum256([]byte(text))
		return "age1pq1…" + text[len(text)-8:] + " (sha256 " + base64.RawStdEncoding.EncodeToString(sum[:])[:16] + ")"
	}
	return text
}

// validRecipientText reports whether a manifest's recipient is a public key
// (or the passphrase marker), never anything that could be an identity.
func validRecipientText(s string) bool {
	switch {
	case s == scryptRecipientText:
		return true
	case strings.HasPrefix(s, "age1"):
		return !strings.ContainsAny(s, " \t\n")
	case strings.HasPrefix(s, "ssh-ed25519 ") || strings.HasPrefix(s, "ssh-rsa "):
		return !strings.ContainsAny(s, "\n")
	}
	return false
}

// newDecrypter opens backup m's age file read from stored with ids. It reads
// the header, so it blocks until the first part arrives.
func newDecrypter(m *Manifest, stored io.Reader, ids *Identities) (io.Reader, error) {
	if ids.Len() == 0 {
		return nil, ErrIdentityRequired
	}
	r, err := age.Decrypt(stored, ids.list...)
	if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
		e := &NoMatchingIdentityError{}
		for _, r := range m.Encryption.Recipients {
			e.Recipients = append(e.Recipients, recipientFingerprint(r))
		}
		for _, p := range ids.public {
			e.Tried = append(e.Tried, recipientFingerprint(p))
		}
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return r, nil
}
