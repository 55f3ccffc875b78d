package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dbarchive/dbarchive/archiver"
)

// Variables of the encryption settings. They are named, not derived from a
// flag (envName), because one of them is not a flag's value: the identity
// is the key's text, which must never be on a command line.
const (
	envRecipients = "DBARCHIVE_RECIPIENTS"
	envIdentity   = "DBARCHIVE_IDENTITY"
)

// takeIdentityEnv reads DBARCHIVE_IDENTITY once and removes it from the
// environment, so no tool dbarchive starts (pg_restore, an exec: target)
// inherits the key.
func (g *globals) takeIdentityEnv() {
	if v, ok := os.LookupEnv(envIdentity); ok {
		g.identityEnv = v
		os.Unsetenv(envIdentity)
	}
}

// recipientFlags are backup's encryption flags.
type recipientFlags struct {
	recipients, files []string
	passphraseFile    string
}

func (f *recipientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.recipients, "recipient", nil, "encrypt to this public key (age1…, or an ssh-ed25519/ssh-rsa public key); repeatable. Also "+envRecipients)
	cmd.Flags().StringArrayVar(&f.files, "recipients-file", nil, "encrypt to the public keys in this file (age's format: one a line, # comments); repeatable")
	cmd.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "encrypt to the passphrase on this file's first line (age scrypt; for people: automated backups should use recipients)")
}

// parse returns the recipients the flags name, or those of
// DBARCHIVE_RECIPIENTS when no flag names any; none means a plain backup.
// Every mistake is a usage error that names the flag and the line, never
// the text (it may be a secret key pasted in the wrong place).
func (f *recipientFlags) parse() ([]archiver.Recipient, error) {
	var out []archiver.Recipient
	for i, s := range f.recipients {
		r, err := archiver.ParseRecipient(s)
		if err != nil {
			return nil, usagef("--recipient (the %s): %v", ordinal(i+1), err)
		}
		out = append(out, r)
	}
	for _, path := range f.files {
		file, err := os.Open(path)
		if err != nil {
			return nil, usagef("--recipients-file: %v", err)
		}
		rs, err := archiver.ParseRecipients(file, "--recipients-file "+path)
		file.Close()
		if err != nil {
			return nil, &usageError{err}
		}
		out = append(out, rs...)
	}
	if f.passphraseFile != "" {
		if len(out) > 0 {
			return nil, usagef("--passphrase-file cannot be combined with --recipient or --recipients-file: age encrypts to a passphrase alone")
		}
		pass, err := readFirstLine(f.passphraseFile, "--passphrase-file")
		if err != nil {
			return nil, err
		}
		r, err := archiver.ScryptRecipient(pass)
		if err != nil {
			return nil, usagef("--passphrase-file %s: %v", f.passphraseFile, err)
		}
		return []archiver.Recipient{r}, nil
	}
	if len(out) > 0 {
		return out, nil
	}
	if v := os.Getenv(envRecipients); strings.TrimSpace(v) != "" {
		rs, err := archiver.ParseRecipients(strings.NewReader(splitCommas(v)), envRecipients)
		if err != nil {
			return nil, &usageError{err}
		}
		return rs, nil
	}
	return nil, nil
}

// splitCommas lets DBARCHIVE_RECIPIENTS list keys on one line, separated by
// commas (no key contains one), as well as one a line.
func splitCommas(v string) string {
	lines := strings.Split(v, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines[i] = strings.ReplaceAll(l, ",", "\n")
		}
	}
	return strings.Join(lines, "\n")
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}

// identityFlags are restore's and verify's decryption flags.
type identityFlags struct {
	file, passphraseFile string
}

func (f *identityFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "identity-file", "", "decrypt with the identity in this file (age-keygen's output, or an unencrypted ssh private key). Also "+envIdentity+" (the key's text)")
	cmd.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "decrypt a backup made with backup --passphrase-file, with the passphrase on this file's first line")
}

// load returns the identities given, or nil when none is. Only the file
// name or the variable's name ever appears in an error.
func (f *identityFlags) load(g *globals) (*archiver.Identities, error) {
	given := 0
	for _, set := range []bool{f.file != "", f.passphraseFile != "", g.identityEnv != ""} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, usagef("give one of --identity-file, --passphrase-file and %s", envIdentity)
	}
	switch {
	case f.file != "":
		file, err := os.Open(f.file)
		if err != nil {
			return nil, usagef("--identity-file: %v", err)
		}
		defer file.Close()
		ids, err := archiver.ParseIdentities(file, "--identity-file "+f.file)
		if err != nil {
			return nil, &usageError{err}
		}
		return ids, nil
	case f.passphraseFile != "":
		pass, err := readFirstLine(f.passphraseFile, "--passphrase-file")
		if err != nil {
			return nil, err
		}
		ids, err := archiver.ScryptIdentities(pass)
		if err != nil {
			return nil, usagef("--passphrase-file %s: %v", f.passphraseFile, err)
		}
		return ids, nil
	case g.identityEnv != "":
		ids, err := archiver.ParseIdentities(strings.NewReader(g.identityEnv), envIdentity)
		if err != nil {
			return nil, &usageError{err}
		}
		return ids, nil
	}
	return nil, nil
}

// readFirstLine reads a secret from the first line of a file; errors name
// the flag and the file, never the content.
func readFirstLine(path, flag string) (string, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return "", usagef("%s: %v", flag, err)
	}
	if err != nil {
		return "", err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	if !sc.Scan() || strings.TrimRight(sc.Text(), "\r") == "" {
		return "", usagef("%s %s: the first line is empty", flag, path)
	}
	return strings.TrimRight(sc.Text(), "\r"), nil
}

// needIdentity is the usage error of reading an encrypted backup's content
// without an identity: it says which keys would do.
func needIdentity(m *archiver.Manifest) error {
	return usagef("backup %s is encrypted (age, to %s): give --identity-file FILE or %s with a matching identity",
		m.ID, strings.Join(recipientNames(m), ", "), envIdentity)
}

// recipientNames are the fingerprints of m's recipients.
func recipientNames(m *archiver.Manifest) []string {
	var out []string
	for _, r := range m.Encryption.Recipients {
		rc, err := archiver.ParseRecipient(r)
		if err != nil { // "scrypt"
			out = append(out, "a passphrase (give --passphrase-file)")
			continue
		}
		out = append(out, rc.Fingerprint())
	}
	return out
}
