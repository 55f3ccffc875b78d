package drill

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// mariadbServerDirs are searched after PATH for mariadbd: Debian installs
// it in /usr/sbin, which is not on every user's PATH.
var mariadbServerDirs = []string{"/usr/sbin", "/usr/local/sbin"}

var mariadbVersionRE = regexp.MustCompile(`Ver (\d+)\.(\d+)\.(\d+)`)

// mariadbMajor turns 10.11 into 1011, so majors compare as numbers.
func mariadbMajor(major, minor string) int {
	a, _ := strconv.Atoi(major)
	b, _ := strconv.Atoi(minor)
	return a*100 + b
}

// StartMariaDB initializes a data directory with mariadb-install-db and
// starts mariadbd with networking off (a Unix socket only) and durability
// off, as a server no older than minMajor (10.11 is 1011; 0: any), in a
// new directory under root ("": the temporary directory).
func StartMariaDB(ctx context.Context, minMajor int, root string) (*Server, error) {
	server, err := lookPath("mariadbd", mariadbServerDirs)
	if err != nil {
		return nil, fmt.Errorf("drill: no MariaDB server: %w; install mariadb-server, or give --restore-to a server", err)
	}
	install, err := lookPath("mariadb-install-db", []string{"/usr/bin", "/usr/local/bin"})
	if err != nil {
		return nil, fmt.Errorf("drill: %w; install mariadb-server, or give --restore-to a server", err)
	}
	out, err := exec.Command(server, "--version").Output()
	m := mariadbVersionRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		return nil, fmt.Errorf("drill: %s --version: %q, %v", server, out, err)
	}
	version, major := m[1]+"."+m[2]+"."+m[3], mariadbMajor(m[1], m[2])
	if major < minMajor {
		return nil, fmt.Errorf("drill: the MariaDB server %s is %s, older than the server the dump came from (%d.%d); install a newer one, or give --restore-to a server",
			server, version, minMajor/100, minMajor%100)
	}
	a, err := serverAccount("mysql")
	if err != nil {
		return nil, err
	}
	dir, err := newDir(a, root)
	if err != nil {
		return nil, err
	}
	s := &Server{Type: "mysql", Version: version, Major: major, dir: dir, logFile: filepath.Join(dir, "server.log")}
	socket := filepath.Join(dir, "mysqld.sock")
	s.urlFor = func(db string) string {
		return (&url.URL{Scheme: "mysql", User: url.User("root"), Host: "localhost", Path: "/" + db, RawQuery: url.Values{"socket": {socket}}.Encode()}).String()
	}
	data := filepath.Join(dir, "data")
	// --no-defaults everywhere: the machine's my.cnf (its socket, its
	// datadir, its port) must not reach the throwaway server.
	err = a.run(ctx, s.logFile, "mariadb-install-db", install, "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	if err == nil {
		client := filepath.Join(filepath.Dir(install), "mariadb-admin")
		err = s.start(ctx, a, func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, client, "--no-defaults", "--socket="+socket, "--user=root", "ping").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s", strings.TrimSpace(string(out)))
			}
			return nil
		}, server, "--no-defaults", "--datadir="+data, "--socket="+socket, "--skip-networking",
			"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--skip-log-bin",
			"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=128M",
			"--max-allowed-packet=1G")
	}
	if err != nil {
		if tail := s.logTail(); tail != "" && !strings.Contains(err.Error(), tail) {
			err = fmt.Errorf("%w: %s", err, tail)
		}
		return nil, joinStop(err, s)
	}
	return s, nil
}

// lookPath finds name on PATH or in one of dirs.
func lookPath(name string, dirs []string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not on PATH nor in %s", name, strings.Join(dirs, ", "))
}
