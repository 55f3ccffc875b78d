//go:build cgo

package zstdcodec

import (
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
	for _, level := range []int{1, 3, 9, 19} {
		enc, err := NewEncoder(EncoderOptions{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		if got := enc.Level(); got != level {
			t.Errorf("libzstd at level %d reports %d", level, got)
		}
		enc.Release()
	}
}
