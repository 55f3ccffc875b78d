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
	enc, err := NewEncoder(EncoderOptions{Level: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Release()
	if _, ok := enc.(*cEncoder); !ok {
		t.Fatalf("NewEncoder in a cgo build returned a %T", enc)
	}
}
