package job

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

// TestRepoTypesAgree proves that the API's repo-type enum (the Go constants
// and the generated CRD), the driver table, and the job's Secret key mapping
// name the same repo types, and that the job hands each driver exactly the
// Secret keys the driver declares.
func TestRepoTypesAgree(t *testing.T) {
	var api []string
	for _, rt := range dbv1.RepoTypes {
		api = append(api, string(rt))
	}
	slices.Sort(api)
	if table := drivers.Types(); !slices.Equal(api, table) {
		t.Fatalf("api/v1alpha1 RepoTypes %v, driver table %v", api, table)
	}
	if crd := crdRepoTypes(t); !slices.Equal(crd, api) {
		t.Fatalf("CRD enum of spec.repos[].type %v, api/v1alpha1 RepoTypes %v (run make manifests)", crd, api)
	}
	for _, rt := range api {
		reg, _ := drivers.Lookup(rt)
		if len(reg.Secrets) == 0 && rt != string(dbv1.RepoTypeFS) {
			t.Errorf("type %s declares no Secret keys", rt)
		}
		mounted := drivers.Secrets{"SomeOtherToolsKey": drivers.NewSecret("x")}
		for _, k := range reg.SecretKeys() {
			mounted[k] = drivers.NewSecret("value-of-" + k)
		}
		got, err := driverSecrets(rt, mounted)
		if err != nil {
			t.Fatalf("type %s: %v", rt, err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range got {
				if !yield(k) {
					return
				}
			}
		})
		want := slices.Sorted(slices.Values(reg.SecretKeys()))
		if !slices.Equal(keys, want) {
			t.Errorf("type %s: the job passes Secret keys %v, the driver declares %v", rt, keys, want)
		}
		for k, v := range got {
			if v.Reveal() != "value-of-"+k {
				t.Errorf("type %s: Secret key %s carries the value of another key", rt, k)
			}
		}
	}
	if _, err := driverSecrets("ftp", nil); err == nil || !strings.Contains(err.Error(), "s3") {
		t.Errorf("driverSecrets of an unknown type = %v, want an error listing the known types", err)
	}
}

// crdRepoTypes reads the enum of spec.repos[].type from the generated CRD.
func crdRepoTypes(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("../config/crd/bases/*databasebackups.yaml")
	if len(files) != 1 {
		t.Fatalf("want one DatabaseBackup CRD under config/crd/bases, found %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								Items struct {
									Properties map[string]struct {
										Enum []string `json:"enum"`
									} `json:"properties"`
								} `json:"items"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) == 0 {
		t.Fatal("CRD has no versions")
	}
	enum := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["repos"].Items.Properties["type"].Enum
	return slices.Sorted(slices.Values(enum))
}
