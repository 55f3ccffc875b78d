package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The job image's binary records its version in every manifest: the
// Dockerfile's build line must stamp VERSION, and the Makefile must pass the
// version it stamps into bin/dbarchive. The test runs the Dockerfile's own go
// build command (outside docker) with -n, which prints the compile and link
// commands without running them (a real build with the image's tags takes
// minutes on a busy machine), and checks that the linker gets the stamp.
func TestJobImageStampsVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile(filepath.Join(root, "Dockerfile.job"))
	if err != nil {
		t.Fatal(err)
	}
	// The RUN instruction holding go build, continuation lines joined.
	text := strings.ReplaceAll(string(docker), "\\\n", " ")
	var build string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = line
		}
	}
	if build == "" {
		t.Fatal("Dockerfile.job has no RUN … go build line")
	}
	// Drop RUN and its --mount flags: the rest is the shell command.
	words := strings.Fields(strings.TrimPrefix(build, "RUN "))
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		words = words[1:]
	}
	out := filepath.Join(t.TempDir(), "dbarchive")
	script := strings.Replace(strings.Join(words, " "), "/out/dbarchive", out, 1)
	if !strings.Contains(script, out) || !strings.Contains(script, "go build ") {
		t.Fatalf("the build line does not go build /out/dbarchive: %s", script)
	}
	script = strings.Replace(script, "go build ", "go build -n ", 1)
	const stamp = "v9.8.7-test"
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(runtime.GOROOT(), "bin")+":"+os.Getenv("PATH"),
		"VERSION="+stamp, "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Dockerfile's build line failed: %v\n%s", err, b)
	}
	var link string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "/link ") {
			link = line
		}
	}
	if !strings.Contains(link, "-X main.version="+stamp) {
		t.Fatalf("the image's link step does not stamp VERSION: %q", link)
	}
	if !regexp.MustCompile(`(?m)^ARG VERSION\b`).MatchString(string(docker)) {
		t.Error("Dockerfile.job declares no ARG VERSION")
	}

	// make passes the version it stamps into bin/dbarchive to the image build.
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not on PATH: %v", err)
	}
	plan, err := exec.Command("make", "-C", root, "-n", "docker-build-job", "build", "VERSION="+stamp).Output()
	if err != nil {
		t.Fatalf("make -n docker-build-job: %v", err)
	}
	for _, want := range []string{"--build-arg VERSION=" + stamp, "-X main.version=" + stamp} {
		if !strings.Contains(string(plan), want) {
			t.Errorf("make -n docker-build-job build lacks %q:\n%s", want, plan)
		}
	}
}
