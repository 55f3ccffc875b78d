//go:build cgo

package zstdcodec

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func init() {
	encoders["libzstd"] = NewCEncoder
	decoders["libzstd"] = NewCDecoder
}

func TestCgoBuildUsesLibzstd(t *testing.T) {
	if !strings.HasPrefix(Implementation(), "libzstd ") {
		t.Fatalf("a cgo build uses %q", Implementation())
	}
	enc, err := NewEncoder(EncoderOptions{Level: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Release()
	if _, ok := enc.(*cEncoder); !ok {
		t.Fatalf("NewEncoder in a cgo build returned a %T", enc)
	}
}

// TestMatchFinderKnobsReachLibzstd: HashLog and MinMatch are set on the
// context, not dropped: single-threaded, the encoder writes byte for byte
// what the zstd command writes with the same parameters (the same library
// underneath), and not what it writes at the level alone.
func TestMatchFinderKnobsReachLibzstd(t *testing.T) {
	zstdBin := zstdCommand(t)
	version, err := exec.Command(zstdBin, "-V").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(version), "v"+LibVersion()+",") {
		// Another libzstd may choose other matches from the same
		// parameters; the test needs the one the command runs.
		t.Fatalf("zstd -V says %q, the linked libzstd is %s: install the zstd command of the same version", version, LibVersion())
	}
	data := sample(t, 3<<20)
	cli := func(params string) []byte {
		cmd := exec.Command(zstdBin, "--single-thread", "-2", "--zstd="+params, "-q", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tuned := encode(t, NewCEncoder, EncoderOptions{Level: 2, Concurrency: 1, WindowLog: 21, HashLog: 17, MinMatch: 7}, data)
	if want := cli("wlog=21,hlog=17,mml=7"); !bytes.Equal(tuned, want) {
		t.Fatalf("level 2, hash log 17, min match 7: %d bytes, zstd -2 --zstd=wlog=21,hlog=17,mml=7 %d bytes, not the same stream", len(tuned), len(want))
	}
	if plain := cli("wlog=21"); bytes.Equal(tuned, plain) {
		t.Fatal("hash log 17 and min match 7 wrote level 2's own stream: the knobs did nothing")
	}
}
