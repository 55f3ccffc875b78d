package drill

import (
	"os/exec"
	"strings"
	"testing"
)

// The major of the server a dump came from is read from each format's own
// header, and matches what the server says of itself.
func TestDumpServerMajor(t *testing.T) {
	out, err := exec.Command("psql", "--no-psqlrc", "-At", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", "SHOW server_version_num").Output()
	if err != nil {
		t.Fatalf("PostgreSQL at 127.0.0.1:5432: %v", err)
	}
	num := strings.TrimSpace(string(out))
	wantPG := leadingInt(num) / 10000
	for _, format := range []string{"custom", "tar", "plain"} {
		dump, err := exec.Command("pg_dump", "--format="+format, "--compress=0", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres").Output()
		if err != nil {
			t.Fatalf("pg_dump --format=%s: %v", format, err)
		}
		if got := dumpServerMajor("postgres", dump[:min(len(dump), headSize)]); got != wantPG {
			t.Errorf("%s dump: major %d, want %d", format, got, wantPG)
		}
	}
	out, err = exec.Command("mariadb", "--no-defaults", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT VERSION()").Output()
	if err != nil {
		t.Fatalf("MariaDB at 127.0.0.1:3306: %v", err)
	}
	v := strings.Split(strings.TrimSpace(string(out)), ".")
	wantMy := mariadbMajor(v[0], v[1])
	dump, err := exec.Command("mariadb-dump", "--no-defaults", "-h", "127.0.0.1", "-u", "root", "mysql", "db").Output()
	if err != nil {
		t.Fatalf("mariadb-dump: %v", err)
	}
	if got := dumpServerMajor("mysql", dump); got != wantMy {
		t.Errorf("mariadb dump: major %d, want %d", got, wantMy)
	}
	if got := dumpServerMajor("postgres", []byte("PGDMP\x01")); got != 0 {
		t.Errorf("a cut header gave major %d, want 0 (unknown)", got)
	}
}

// A dump from a newer major than any installed server is refused naming
// what was found and what to install.
func TestChoosePostgres(t *testing.T) {
	found := []pgBinary{{dir: "/a", version: "13.2", major: 13}, {dir: "/b", version: "15.4", major: 15}}
	for _, c := range []struct{ min, want int }{{0, 15}, {12, 13}, {13, 13}, {14, 15}} {
		if b, err := choosePostgres(found, c.min); err != nil || b.major != c.want {
			t.Errorf("choosePostgres(min %d) = %v, %v; want major %d", c.min, b, err, c.want)
		}
	}
	_, err := choosePostgres(found, 17)
	if err == nil || !strings.Contains(err.Error(), "major 17") || !strings.Contains(err.Error(), "15.4 in /b") || !strings.Contains(err.Error(), "postgresql-17") {
		t.Errorf("choosePostgres(min 17) = %v; want an error naming 17, what was found and the package", err)
	}
	if _, err := choosePostgres(nil, 0); err == nil || !strings.Contains(err.Error(), "found: none") {
		t.Errorf("choosePostgres with nothing installed = %v; want an error saying none was found", err)
	}
}
