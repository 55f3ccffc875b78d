package postgres

import (
	"bufio"
	"bytes"
	"io"
)

// transactionTimeoutLine is what pg_dump and pg_restore of PostgreSQL 17 and
// later write into a script's preamble, whatever server the script is for.
// A server before 17 refuses it ("unrecognized configuration parameter"),
// and in the restore's one transaction that fails the whole restore: the
// job image's PostgreSQL 17 tools could not restore into PostgreSQL 15 or
// 16 (found by the cluster tests, e2e/cluster).
const transactionTimeoutLine = "SET transaction_timeout = 0;"

// transactionTimeoutGuard replaces that line: the server sets it only where
// it has the parameter, so a restore into 17 still turns it off. Plain SQL,
// not psql's \if: scripts of 17.6 and later start with \restrict, which
// refuses every backslash command.
const transactionTimeoutGuard = "SELECT set_config('transaction_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 170000;\n"

// preambleLines is how far into a script the line is looked for: the
// preamble is a few dozen SET lines; after it come objects and COPY data,
// which must pass through untouched.
const preambleLines = 64

// guardTransactionTimeout passes a script through, with the preamble's
// SET transaction_timeout line made conditional on the server's version.
func guardTransactionTimeout(r io.Reader) io.Reader {
	return &timeoutGuard{src: bufio.NewReaderSize(r, 64<<10)}
}

type timeoutGuard struct {
	src  *bufio.Reader
	head *bytes.Reader // the rewritten preamble, once read
	err  error         // the error that ended the preamble
}

func (g *timeoutGuard) Read(p []byte) (int, error) {
	if g.head == nil {
		var buf bytes.Buffer
		for i := 0; i < preambleLines; i++ {
			line, err := g.src.ReadSlice('\n')
			if bytes.Equal(bytes.TrimRight(line, "\r\n"), []byte(transactionTimeoutLine)) {
				buf.WriteString(transactionTimeoutGuard)
			} else {
				buf.Write(line)
			}
			if err == bufio.ErrBufferFull {
				// A line longer than the buffer is data, not the preamble.
				break
			}
			if err != nil {
				g.err = err
				break
			}
		}
		g.head = bytes.NewReader(buf.Bytes())
	}
	if g.head.Len() > 0 {
		return g.head.Read(p)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.src.Read(p)
}
