package all

import (
	"slices"
	"testing"

	"github.com/dbarchive/dbarchive/sources"
)

func TestAllSchemesRegistered(t *testing.T) {
	want := []string{"exec", "http", "https", "mariadb", "mysql", "postgres", "postgresql"}
	if got := sources.Schemes(); !slices.Equal(got, want) {
		t.Fatalf("Schemes() = %v, want %v", got, want)
	}
}
