package drill

import (
	"bytes"
	"regexp"
	"strconv"
)

// headSize is how much of a dump's start dumpServerMajor looks at: the
// archive header, or the comment lines a plain dump starts with.
const headSize = 64 << 10

var (
	plainPGVersionRE = regexp.MustCompile(`(?m)^-- Dumped from database version (\d+)`)
	mariadbDumpRE    = regexp.MustCompile(`(?m)^-- Server version\s+(\d+)\.(\d+)`)
)

// dumpServerMajor reads the major version of the server a dump came from
// out of the dump's first bytes: the remote version string of a custom
// archive's header (also the first member of a tar archive), the "Dumped
// from database version" line of a plain dump, or mariadb-dump's "Server
// version" line (as 1011 for 10.11). It returns 0 when it cannot tell.
func dumpServerMajor(sourceType string, head []byte) int {
	if sourceType == "mysql" {
		if m := mariadbDumpRE.FindSubmatch(head); m != nil {
			return mariadbMajor(string(m[1]), string(m[2]))
		}
		return 0
	}
	if v := customRemoteVersion(head); v != "" {
		return leadingInt(v)
	}
	// A tar archive's first member is toc.dat, a custom-format header.
	if len(head) > 512 && bytes.HasPrefix(head[512:], []byte("PGDMP")) {
		return leadingInt(customRemoteVersion(head[512:]))
	}
	if m := plainPGVersionRE.FindSubmatch(head); m != nil {
		return leadingInt(string(m[1]))
	}
	return 0
}

// customRemoteVersion reads the server version string from a custom
// archive's header (pg_backup_archiver.c, ReadHead): magic, version,
// integer and offset sizes, format, compression (a byte from 1.15 on, an
// integer before), the creation time as seven integers, then the database
// name and the server version as strings. An integer is a sign byte and
// intSize bytes, least significant first; a string is its length, then its
// bytes.
func customRemoteVersion(b []byte) string {
	if !bytes.HasPrefix(b, []byte("PGDMP")) || len(b) < 11 {
		return ""
	}
	version := int(b[5])<<16 | int(b[6])<<8 | int(b[7])
	intSize := int(b[8])
	if intSize < 1 || intSize > 8 || version < 1<<16|10<<8 {
		return "" // older than 1.10: no server version in the header
	}
	pos := 11
	if version >= 1<<16|15<<8 {
		pos++
	} else {
		pos += 1 + intSize
	}
	pos += 7 * (1 + intSize)
	readInt := func() (int, bool) {
		if pos+1+intSize > len(b) {
			return 0, false
		}
		n := 0
		for i := intSize - 1; i >= 0; i-- {
			n = n<<8 | int(b[pos+1+i])
		}
		if b[pos] != 0 {
			n = -n
		}
		pos += 1 + intSize
		return n, true
	}
	readStr := func() (string, bool) {
		n, ok := readInt()
		if !ok || n > len(b)-pos {
			return "", false
		}
		if n < 0 {
			return "", true
		}
		s := string(b[pos : pos+n])
		pos += n
		return s, true
	}
	if _, ok := readStr(); !ok { // the database name
		return ""
	}
	v, _ := readStr()
	return v
}

func leadingInt(s string) int {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(s[:end])
	return n
}
