package zstdcodec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"testing"

	"github.com/dbarchive/dbarchive/internal/testgen"
)

type newEncoderFunc func(EncoderOptions) (Encoder, error)
type newDecoderFunc func(io.Reader, DecoderOptions) (Decoder, error)

// encoders and decoders are every implementation this build has: the
// pure-Go one always, libzstd with cgo (libzstd_test.go adds it).
var (
	encoders = map[string]newEncoderFunc{"go": NewGoEncoder}
	decoders = map[string]newDecoderFunc{"go": NewGoDecoder}
)

// sample is a dump-like stream: compressible rows from testgen's pool,
// several MiB so that multithreaded encoders cut it into several jobs.
func sample(t testing.TB, n int64) []byte {
	var buf bytes.Buffer
	if err := testgen.WriteStream(&buf, testgen.Pool(3), n, 1<<16); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encode(t testing.TB, newEnc newEncoderFunc, o EncoderOptions, data []byte) []byte {
	enc, err := newEnc(o)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Release()
	var out bytes.Buffer
	enc.Reset(&out)
	// Odd-sized writes, as a pipe delivers them.
	for p := data; len(p) > 0; {
		k := min(len(p), 100_003)
		if n, err := enc.Write(p[:k]); err != nil || n != k {
			t.Fatalf("write: %d of %d, %v", n, k, err)
		}
		p = p[k:]
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func decode(newDec newDecoderFunc, stream []byte) ([]byte, error) {
	dec, err := newDec(bytes.NewReader(stream), DecoderOptions{Concurrency: 2, MaxWindowLog: 30})
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	// A small buffer: the decoder must hand out what it holds over many
	// reads.
	var out bytes.Buffer
	_, err = io.CopyBuffer(&out, struct{ io.Reader }{dec}, make([]byte, 7_001))
	return out.Bytes(), err
}

// checksumFlag reports whether the frame header says a content checksum
// follows the last block (RFC 8878, Frame_Header_Descriptor bit 2).
func checksumFlag(t *testing.T, stream []byte) bool {
	if len(stream) < 5 || !bytes.Equal(stream[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("not a zstd frame: % x", stream[:min(len(stream), 8)])
	}
	return stream[4]&0x04 != 0
}

// zstdCommand is the path of the zstd command, which these tests compare
// the encoders with; without it they fail (.ci/run installs it).
func zstdCommand(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("zstd is not installed (apt-get install zstd)")
	}
	return path
}

// TestEveryEncoderEveryDecoder decodes each encoder's stream with each
// decoder and with the zstd command: they must agree on the format, the
// checksum included.
func TestEveryEncoderEveryDecoder(t *testing.T) {
	zstdBin := zstdCommand(t)
	data := sample(t, 3<<20+123)
	for encName, newEnc := range encoders {
		for _, o := range []EncoderOptions{
			{Level: 1, Concurrency: 1},
			{Level: 3, Concurrency: 2, WindowLog: 21},
			{Level: 9, Concurrency: 1},
			// The backup's default setting (archiver.DefaultHashLog, DefaultMinMatch).
			{Level: 2, Concurrency: 2, WindowLog: 21, HashLog: 17, MinMatch: 7},
		} {
			t.Run(fmt.Sprintf("%s-level%d-conc%d-hlog%d-mml%d", encName, o.Level, o.Concurrency, o.HashLog, o.MinMatch), func(t *testing.T) {
				stream := encode(t, newEnc, o, data)
				if !checksumFlag(t, stream) {
					t.Fatal("the frame has no content checksum")
				}
				if len(stream) >= len(data)/2 {
					t.Fatalf("%d bytes compressed to %d: not compressed", len(data), len(stream))
				}
				for decName, newDec := range decoders {
					got, err := decode(newDec, stream)
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s decoder: %d bytes, identical %v, error %v", decName, len(got), bytes.Equal(got, data), err)
					}
				}
				cmd := exec.Command(zstdBin, "-d", "-c", "-q")
				cmd.Stdin = bytes.NewReader(stream)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				got, err := cmd.Output()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("zstd -d: %d bytes, identical %v, error %v: %s", len(got), bytes.Equal(got, data), err, stderr.String())
				}
			})
		}
	}
}

// TestDecodeIntoExactBuffer: when the caller's buffer ends exactly where
// the frame does, the next read is a clean io.EOF (the decoder must not
// take the empty step after the frame for the start of another).
func TestDecodeIntoExactBuffer(t *testing.T) {
	data := sample(t, 1<<20+17)
	stream := encode(t, NewGoEncoder, EncoderOptions{Level: 3, Concurrency: 1}, data)
	for decName, newDec := range decoders {
		t.Run(decName, func(t *testing.T) {
			dec, err := newDec(bytes.NewReader(stream), DecoderOptions{Concurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			got := make([]byte, len(data))
			if _, err := io.ReadFull(dec, got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadFull: identical %v, %v", bytes.Equal(got, data), err)
			}
			if n, err := dec.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("read after the end = %d, %v; want 0, io.EOF", n, err)
			}
		})
	}
}

// TestDecodersRejectDamage: a truncated stream and a changed byte fail in
// every decoder instead of ending cleanly.
func TestDecodersRejectDamage(t *testing.T) {
	data := sample(t, 1<<20)
	stream := encode(t, NewGoEncoder, EncoderOptions{Level: 3, Concurrency: 1}, data)
	flipped := bytes.Clone(stream)
	flipped[len(flipped)-2] ^= 0x40 // inside the content checksum
	for decName, newDec := range decoders {
		t.Run(decName, func(t *testing.T) {
			if _, err := decode(newDec, stream[:len(stream)-100]); err == nil {
				t.Error("a truncated stream decoded without an error")
			}
			if _, err := decode(newDec, flipped); err == nil {
				t.Error("a stream with a wrong checksum decoded without an error")
			}
			if _, err := decode(newDec, append(bytes.Clone(stream), 1, 2, 3, 4, 5, 6, 7, 8)); err == nil {
				t.Error("garbage after the frame decoded without an error")
			}
		})
	}
}

// TestEncoderReuseAndRelease: after Close an encoder starts a new frame on
// Reset; Release stops it whether or not the frame was closed, and twice
// is harmless.
func TestEncoderReuseAndRelease(t *testing.T) {
	data := sample(t, 3<<19)
	for name, newEnc := range encoders {
		t.Run(name, func(t *testing.T) {
			enc, err := newEnc(EncoderOptions{Level: 3, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				var out bytes.Buffer
				enc.Reset(&out)
				if _, err := enc.Write(data); err != nil {
					t.Fatal(err)
				}
				if err := enc.Close(); err != nil {
					t.Fatal(err)
				}
				if got, err := decode(NewGoDecoder, out.Bytes()); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("reused encoder: identical %v, %v", bytes.Equal(got, data), err)
				}
			}
			enc.Reset(io.Discard)
			if _, err := enc.Write(data); err != nil {
				t.Fatal(err)
			}
			enc.Release() // abandon the open frame
			enc.Release()
		})
	}
}

// TestEncoderReportsWriterError: a failing destination fails the write or
// the close, and the encoder keeps failing.
func TestEncoderReportsWriterError(t *testing.T) {
	data := sample(t, 2<<20)
	boom := errors.New("disk full")
	for name, newEnc := range encoders {
		t.Run(name, func(t *testing.T) {
			enc, err := newEnc(EncoderOptions{Level: 1, Concurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Release()
			enc.Reset(failingWriter{boom})
			_, werr := enc.Write(data)
			cerr := enc.Close()
			if !errors.Is(werr, boom) && !errors.Is(cerr, boom) {
				t.Fatalf("write %v, close %v: want %v", werr, cerr, boom)
			}
		})
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestOptionsAreChecked(t *testing.T) {
	for name, newEnc := range encoders {
		for _, o := range []EncoderOptions{{Level: 0}, {Level: 23}, {Level: 3, WindowLog: 9}, {Level: 3, WindowLog: 31},
			{Level: 2, HashLog: 5}, {Level: 2, HashLog: 31}, {Level: 2, MinMatch: 2}, {Level: 2, MinMatch: 8}} {
			if enc, err := newEnc(o); err == nil {
				enc.Release()
				t.Errorf("%s: %+v accepted", name, o)
			}
		}
	}
}
