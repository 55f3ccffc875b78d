//go:build !cgo

package zstdcodec

import "io"

const implementation = "klauspost/compress (pure Go)"

func newDefaultEncoder(o EncoderOptions) (Encoder, error) { return NewGoEncoder(o) }

func newDefaultDecoder(r io.Reader, o DecoderOptions) (Decoder, error) {
	return NewGoDecoder(r, o)
}
