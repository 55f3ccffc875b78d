// Package all registers every source type. The CLI and the operator import it
// for its side effect; a new source type is one more line here.
package all

import (
	_ "github.com/dbarchive/dbarchive/sources/exec"     // exec:
	_ "github.com/dbarchive/dbarchive/sources/http"     // http, https
	_ "github.com/dbarchive/dbarchive/sources/mysql"    // mysql, mariadb
	_ "github.com/dbarchive/dbarchive/sources/postgres" // postgres, postgresql
)
