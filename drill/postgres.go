package drill

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// pgInstallRoot is where Debian and Ubuntu put each PostgreSQL major's
// server programs, side by side.
var pgInstallRoot = "/usr/lib/postgresql"

// pgBinary is one PostgreSQL installation's bin directory.
type pgBinary struct {
	dir     string
	version string
	major   int
}

var pgVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// findPostgres lists the PostgreSQL server installations found: the one
// whose postgres or initdb is on PATH, and every major under
// /usr/lib/postgresql.
func findPostgres() []pgBinary {
	var dirs []string
	for _, name := range []string{"postgres", "initdb"} {
		if p, err := exec.LookPath(name); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(real))
			}
		}
	}
	if m, _ := filepath.Glob(filepath.Join(pgInstallRoot, "*", "bin")); m != nil {
		dirs = append(dirs, m...)
	}
	var found []pgBinary
	for _, d := range dirs {
		if slices.ContainsFunc(found, func(b pgBinary) bool { return b.dir == d }) {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		out, err := exec.Command(filepath.Join(d, "postgres"), "--version").Output()
		if err != nil {
			continue
		}
		m := pgVersionRE.FindStringSubmatch(string(out))
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		found = append(found, pgBinary{dir: d, version: m[1] + m[2], major: major})
	}
	slices.SortFunc(found, func(a, b pgBinary) int { return cmp.Compare(a.major, b.major) })
	return found
}

// choosePostgres picks the oldest installation no older than the dump's
// server (minMajor; 0 when unknown, which takes the newest): a server can
// load dumps of older majors, and the nearest one renders values most like
// the dump did.
func choosePostgres(found []pgBinary, minMajor int) (pgBinary, error) {
	if minMajor == 0 && len(found) > 0 {
		return found[len(found)-1], nil
	}
	for _, b := range found {
		if b.major >= minMajor {
			return b, nil
		}
	}
	var have []string
	for _, b := range found {
		have = append(have, b.version+" in "+b.dir)
	}
	if len(have) == 0 {
		have = []string{"none"}
	}
	return pgBinary{}, fmt.Errorf("drill: no PostgreSQL server of major %d or newer on PATH or under %s (found: %s); install postgresql-%d, or give --restore-to a server",
		minMajor, pgInstallRoot, strings.Join(have, ", "), minMajor)
}

// StartPostgres initializes a cluster in a temporary directory and starts
// it on a Unix socket only, with durability off (fsync, synchronous commit
// and full-page writes: the cluster is thrown away), as a server no older
// than major minMajor (0: any), in a new directory under root ("": the
// temporary directory).
func StartPostgres(ctx context.Context, minMajor int, root string) (*Server, error) {
	bin, err := choosePostgres(findPostgres(), minMajor)
	if err != nil {
		return nil, err
	}
	a, err := serverAccount("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := newDir(a, root)
	if err != nil {
		return nil, err
	}
	s := &Server{Type: "postgres", Version: bin.version, Major: bin.major, dir: dir, logFile: filepath.Join(dir, "server.log")}
	s.urlFor = func(db string) string {
		return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: url.Values{"host": {dir}}.Encode()}).String()
	}
	data := filepath.Join(dir, "data")
	err = a.run(ctx, s.logFile, "initdb", filepath.Join(bin.dir, "initdb"),
		"--pgdata="+data, "--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
	if err == nil {
		err = s.start(ctx, a, s.pgReady(bin), filepath.Join(bin.dir, "postgres"), "-D", data, "-k", dir,
			"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_wal_size=1GB", "-c", "logging_collector=off")
	}
	if err != nil {
		if tail := s.logTail(); tail != "" && !strings.Contains(err.Error(), tail) {
			err = fmt.Errorf("%w: %s", err, tail)
		}
		return nil, joinStop(err, s)
	}
	return s, nil
}

// pgReady asks pg_isready of the same installation whether the server
// accepts connections on its socket.
func (s *Server) pgReady(bin pgBinary) func(context.Context) error {
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, filepath.Join(bin.dir, "pg_isready"), "--host="+s.dir, "--username=postgres", "--dbname=postgres").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s", strings.TrimSpace(string(out)))
		}
		return nil
	}
}

func joinStop(err error, s *Server) error {
	if serr := s.Stop(); serr != nil {
		return fmt.Errorf("%w (and %v)", err, serr)
	}
	return err
}
