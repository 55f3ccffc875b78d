package zstdcodec

import (
	"io"

	"github.com/klauspost/compress/zstd"
)

// Implementation names the encoder and decoder this build uses, for logs
// and benchmark reports.
func Implementation() string { return implementation }

// goEncoder is klauspost/compress's encoder. It has four speeds, not 22
// levels: a level is mapped to the nearest one.
type goEncoder struct {
	enc *zstd.Encoder
}

// NewGoEncoder returns the pure-Go encoder whatever the build.
func NewGoEncoder(o EncoderOptions) (Encoder, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	window := 2 << 20 // zstd's own window at level 3
	if o.WindowLog != 0 {
		window = 1 << o.WindowLog
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.Level)),
		zstd.WithEncoderConcurrency(max(o.Concurrency, 1)),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(window))
	if err != nil {
		return nil, err
	}
	return &goEncoder{enc: enc}, nil
}

func (e *goEncoder) Reset(w io.Writer)           { e.enc.Reset(w) }
func (e *goEncoder) Write(p []byte) (int, error) { return e.enc.Write(p) }
func (e *goEncoder) Close() error                { return e.enc.Close() }

// Release drops a frame in progress: Reset ends the encoder's goroutines.
func (e *goEncoder) Release() { e.enc.Reset(io.Discard) }

type goDecoder struct{ dec *zstd.Decoder }

// NewGoDecoder returns the pure-Go decoder whatever the build.
func NewGoDecoder(r io.Reader, o DecoderOptions) (Decoder, error) {
	opts := []zstd.DOption{zstd.WithDecoderConcurrency(max(o.Concurrency, 1))}
	if o.MaxWindowLog > 0 {
		opts = append(opts, zstd.WithDecoderMaxWindow(1<<o.MaxWindowLog))
	}
	dec, err := zstd.NewReader(r, opts...)
	if err != nil {
		return nil, err
	}
	return goDecoder{dec}, nil
}

func (d goDecoder) Read(p []byte) (int, error) { return d.dec.Read(p) }
func (d goDecoder) Close()                     { d.dec.Close() }
