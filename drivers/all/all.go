// Package all assembles the driver table: importing it registers every repo
// type dbarchive ships. Adding a repo type is one package under drivers/ and
// one line here.
package all

import (
	_ "github.com/dbarchive/dbarchive/drivers/azure"
	_ "github.com/dbarchive/dbarchive/drivers/fs"
	_ "github.com/dbarchive/dbarchive/drivers/gcs"
	_ "github.com/dbarchive/dbarchive/drivers/ibmcos"
	_ "github.com/dbarchive/dbarchive/drivers/s3"
)
