package zstdcodec

import (
	"fmt"
	"io"
)

// Encoder compresses what is written to it into one zstd frame with a
// content checksum.
type Encoder interface {
	// Reset starts a new frame written to w.
	Reset(w io.Writer)
	// Write compresses p; compressed bytes reach w as blocks fill up.
	Write(p []byte) (int, error)
	// Close ends the frame and writes what is left of it to w. It does not
	// close w, and the encoder may be Reset and used again.
	Close() error
	// Release frees the encoder's memory and stops its workers, whether or
	// not the frame was closed. The encoder cannot be used afterwards;
	// calling Release again does nothing.
	Release()
}

// EncoderOptions configure an encoder.
type EncoderOptions struct {
	// Level is the zstd level, 1 to 22. libzstd runs it as given; the
	// pure-Go encoder has four speeds and runs the nearest (1-2: fastest,
	// 3-5: default, 6-9: better, 10-22: best).
	Level int
	// Concurrency is the number of goroutines or threads compressing at
	// once; 0 or 1 compresses on the writing goroutine's time.
	Concurrency int
	// WindowLog is log2 of the match window (0: the level's own).
	WindowLog int
	// HashLog is log2 of the match finder's hash table, in entries, and
	// MinMatch the shortest match it looks for (0: the level's own). Only
	// libzstd has these knobs; the pure-Go encoder runs Level's speed as
	// it is. The stream stays a standard one: they change which matches
	// the encoder finds, not how they are written.
	HashLog  int
	MinMatch int
}

// Decoder reads the uncompressed stream back, checking each frame's
// content checksum.
type Decoder interface {
	Read(p []byte) (int, error)
	// Close frees the decoder; it does not close the source.
	Close()
}

// DecoderOptions configure a decoder.
type DecoderOptions struct {
	// Concurrency is the pure-Go decoder's goroutines (libzstd decodes on
	// the reading goroutine: it is fast enough alone).
	Concurrency int
	// MaxWindowLog refuses frames whose window is larger than 1<<MaxWindowLog
	// bytes (a damaged or hostile header could ask for any size).
	MaxWindowLog int
}

func (o EncoderOptions) check() error {
	if o.Level < 1 || o.Level > 22 {
		return fmt.Errorf("zstd level %d is outside 1..22", o.Level)
	}
	if o.Concurrency < 0 {
		return fmt.Errorf("zstd encoder concurrency %d is negative", o.Concurrency)
	}
	if o.WindowLog != 0 && (o.WindowLog < 10 || o.WindowLog > 30) {
		return fmt.Errorf("zstd window log %d is outside 10..30", o.WindowLog)
	}
	if o.HashLog != 0 && (o.HashLog < 6 || o.HashLog > 30) {
		return fmt.Errorf("zstd hash log %d is outside 6..30", o.HashLog)
	}
	if o.MinMatch != 0 && (o.MinMatch < 3 || o.MinMatch > 7) {
		return fmt.Errorf("zstd minimum match %d is outside 3..7", o.MinMatch)
	}
	return nil
}

// NewEncoder returns the build's encoder (libzstd with cgo, pure Go
// without). Release it when done.
func NewEncoder(o EncoderOptions) (Encoder, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	return newDefaultEncoder(o)
}

// NewDecoder returns the build's decoder reading from r.
func NewDecoder(r io.Reader, o DecoderOptions) (Decoder, error) {
	return newDefaultDecoder(r, o)
}
