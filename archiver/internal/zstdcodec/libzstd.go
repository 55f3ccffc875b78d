//go:build cgo

package zstdcodec

/*
#cgo pkg-config: libzstd
#include <stdlib.h>
#include <zstd.h>

// The in and out buffer descriptors live on the C stack, and the positions
// come back by value: nothing Go allocates is retained by C or escapes.
typedef struct {
	size_t ret;
	size_t in_pos;
	size_t out_pos;
} step;

static step compress_step(ZSTD_CCtx *cctx, void *dst, size_t dst_cap, const void *src, size_t src_size, ZSTD_EndDirective end) {
	ZSTD_outBuffer out = {dst, dst_cap, 0};
	ZSTD_inBuffer in = {src, src_size, 0};
	step s;
	s.ret = ZSTD_compressStream2(cctx, &out, &in, end);
	s.in_pos = in.pos;
	s.out_pos = out.pos;
	return s;
}

static step decompress_step(ZSTD_DCtx *dctx, void *dst, size_t dst_cap, const void *src, size_t src_size) {
	ZSTD_outBuffer out = {dst, dst_cap, 0};
	ZSTD_inBuffer in = {src, src_size, 0};
	step s;
	s.ret = ZSTD_decompressStream(dctx, &out, &in);
	s.in_pos = in.pos;
	s.out_pos = out.pos;
	return s;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"unsafe"
)

var implementation = "libzstd " + LibVersion() + " (cgo)"

// LibVersion is the version of the libzstd this binary runs with.
func LibVersion() string { return C.GoString(C.ZSTD_versionString()) }

func newDefaultEncoder(o EncoderOptions) (Encoder, error) { return NewCEncoder(o) }

func newDefaultDecoder(r io.Reader, o DecoderOptions) (Decoder, error) {
	return NewCDecoder(r, o)
}

// zstdError turns a libzstd return code into an error, or nil.
func zstdError(code C.size_t) error {
	if C.ZSTD_isError(code) == 0 {
		return nil
	}
	return fmt.Errorf("zstd: %s", C.GoString(C.ZSTD_getErrorName(code)))
}

// cEncoder drives a ZSTD_CCtx. With Concurrency above 1 libzstd runs that
// many worker threads of its own; their buffers are outside the Go heap
// (jobSize below keeps them small).
type cEncoder struct {
	cctx *C.ZSTD_CCtx
	w    io.Writer
	out  []byte
	err  error
}

// mtJobSize is the input of one multithreaded compression job. libzstd's
// default at level 3 is 8 MiB, which with two workers holds about 50 MiB
// of buffers; 1 MiB jobs hold about 8 MiB for output 0.1% larger.
const mtJobSize = 1 << 20

// NewCEncoder returns the libzstd encoder.
func NewCEncoder(o EncoderOptions) (Encoder, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	cctx := C.ZSTD_createCCtx()
	if cctx == nil {
		return nil, errors.New("zstd: cannot allocate a compression context")
	}
	e := &cEncoder{cctx: cctx, out: make([]byte, int(C.ZSTD_CStreamOutSize()))}
	set := func(p C.ZSTD_cParameter, v int) error {
		return zstdError(C.ZSTD_CCtx_setParameter(cctx, p, C.int(v)))
	}
	err := set(C.ZSTD_c_compressionLevel, o.Level)
	if err == nil {
		err = set(C.ZSTD_c_checksumFlag, 1)
	}
	if err == nil && o.WindowLog != 0 {
		err = set(C.ZSTD_c_windowLog, o.WindowLog)
	}
	if err == nil && o.HashLog != 0 {
		err = set(C.ZSTD_c_hashLog, o.HashLog)
	}
	if err == nil && o.MinMatch != 0 {
		err = set(C.ZSTD_c_minMatch, o.MinMatch)
	}
	if err == nil && o.Concurrency > 1 {
		// Fails on a libzstd built without threads.
		err = set(C.ZSTD_c_nbWorkers, o.Concurrency)
		if err == nil {
			err = set(C.ZSTD_c_jobSize, mtJobSize)
		}
	}
	if err != nil {
		e.Release()
		return nil, err
	}
	return e, nil
}

func (e *cEncoder) Reset(w io.Writer) {
	e.w, e.err = w, nil
	if e.cctx != nil {
		C.ZSTD_CCtx_reset(e.cctx, C.ZSTD_reset_session_only)
	}
}

func (e *cEncoder) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.cctx == nil {
		return 0, errors.New("zstd: encoder released")
	}
	written := 0
	for len(p) > 0 {
		s := C.compress_step(e.cctx, unsafe.Pointer(&e.out[0]), C.size_t(len(e.out)), unsafe.Pointer(&p[0]), C.size_t(len(p)), C.ZSTD_e_continue)
		if err := zstdError(s.ret); err != nil {
			e.err = err
			return written, err
		}
		p = p[s.in_pos:]
		written += int(s.in_pos)
		if err := e.emit(int(s.out_pos)); err != nil {
			return written, err
		}
	}
	return written, nil
}

// emit hands n compressed bytes of e.out to the writer.
func (e *cEncoder) emit(n int) error {
	if n == 0 {
		return nil
	}
	if _, err := e.w.Write(e.out[:n]); err != nil {
		e.err = err
		return err
	}
	return nil
}

func (e *cEncoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if e.cctx == nil {
		return errors.New("zstd: encoder released")
	}
	for {
		s := C.compress_step(e.cctx, unsafe.Pointer(&e.out[0]), C.size_t(len(e.out)), nil, 0, C.ZSTD_e_end)
		if err := zstdError(s.ret); err != nil {
			e.err = err
			return err
		}
		if err := e.emit(int(s.out_pos)); err != nil {
			return err
		}
		if s.ret == 0 { // the frame is complete and flushed
			return nil
		}
	}
}

// Release frees the context; ZSTD_freeCCtx joins the worker threads.
func (e *cEncoder) Release() {
	if e.cctx != nil {
		C.ZSTD_freeCCtx(e.cctx)
		e.cctx = nil
	}
}

// cDecoder drives a ZSTD_DCtx on the reading goroutine.
type cDecoder struct {
	dctx       *C.ZSTD_DCtx
	r          io.Reader
	in         []byte
	pos, end   int  // the unread input is in[pos:end]
	eof        bool // r has returned io.EOF
	frameOpen  bool // a frame has started and not ended
	outPending bool // the last step filled the caller's buffer: more may be buffered
	err        error
}

// NewCDecoder returns the libzstd decoder reading from r.
func NewCDecoder(r io.Reader, o DecoderOptions) (Decoder, error) {
	dctx := C.ZSTD_createDCtx()
	if dctx == nil {
		return nil, errors.New("zstd: cannot allocate a decompression context")
	}
	d := &cDecoder{dctx: dctx, r: r, in: make([]byte, int(C.ZSTD_DStreamInSize()))}
	if o.MaxWindowLog > 0 {
		if err := zstdError(C.ZSTD_DCtx_setParameter(dctx, C.ZSTD_d_windowLogMax, C.int(o.MaxWindowLog))); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

func (d *cDecoder) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.dctx == nil {
		return 0, errors.New("zstd: decoder closed")
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if d.pos == d.end && !d.outPending {
			if d.eof {
				d.err = io.EOF
				if d.frameOpen {
					d.err = fmt.Errorf("zstd: the stream ends inside a frame: %w", io.ErrUnexpectedEOF)
				}
				return 0, d.err
			}
			n, err := d.r.Read(d.in)
			d.pos, d.end = 0, n
			switch {
			case err == io.EOF:
				d.eof = true
			case err != nil:
				d.err = err
				return 0, err
			}
			if n == 0 {
				continue
			}
		}
		var src unsafe.Pointer
		if d.pos < d.end {
			src = unsafe.Pointer(&d.in[d.pos])
		}
		s := C.decompress_step(d.dctx, unsafe.Pointer(&p[0]), C.size_t(len(p)), src, C.size_t(d.end-d.pos))
		if err := zstdError(s.ret); err != nil {
			d.err = err
			return 0, err
		}
		d.pos += int(s.in_pos)
		if s.in_pos > 0 || s.out_pos > 0 {
			// 0: a frame ended and is fully flushed. A step that moved
			// nothing says nothing: after a frame's end it asks for the
			// next frame's header.
			d.frameOpen = s.ret != 0
		}
		d.outPending = int(s.out_pos) == len(p)
		if s.out_pos > 0 {
			return int(s.out_pos), nil
		}
	}
}

func (d *cDecoder) Close() {
	if d.dctx != nil {
		C.ZSTD_freeDCtx(d.dctx)
		d.dctx = nil
	}
}
