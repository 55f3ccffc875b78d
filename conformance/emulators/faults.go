package emulators

import (
	"io"
	"net"
	"net/http"
	"sync"
)

// Faults injects failures into the part uploads (PUT ?partNumber=&uploadId=)
// an emulator receives, so tests of the archiver's retries see the errors a
// real store produces: a 500 answer, or a connection reset mid-request. Other
// requests pass untouched. The zero value injects nothing; it is safe for
// concurrent use.
type Faults struct {
	mu           sync.Mutex
	pending500   int
	pendingReset int
	injected500  int
	injectedRst  int
}

// Fail500 makes the next n part uploads answer 500 InternalError. They are
// taken before any resets that are pending.
func (f *Faults) Fail500(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending500 += n
}

// Reset makes the next n part uploads (after pending 500s) end with the
// connection reset (RST) before any answer.
func (f *Faults) Reset(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pendingReset += n
}

// Injected reports how many 500s and resets were injected so far.
func (f *Faults) Injected() (status500, resets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected500, f.injectedRst
}

// Pending reports how many faults are armed and not yet injected.
func (f *Faults) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending500 + f.pendingReset
}

type fault int

const (
	noFault fault = iota
	fault500
	faultReset
)

func (f *Faults) next(r *http.Request) fault {
	q := r.URL.Query()
	if r.Method != http.MethodPut || !q.Has("partNumber") || !q.Has("uploadId") {
		return noFault
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.pending500 > 0:
		f.pending500--
		f.injected500++
		return fault500
	case f.pendingReset > 0:
		f.pendingReset--
		f.injectedRst++
		return faultReset
	}
	return noFault
}

func (f *Faults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch f.next(r) {
		case fault500:
			// Read the part first, as a store that fails after receiving it
			// would, so the client sees an answer and not a broken write.
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
				`<Error><Code>InternalError</Code><Message>injected fault</Message><RequestId>fault</RequestId></Error>`)
		case faultReset:
			resetConn(w)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// resetConn closes the request's connection with an RST (linger 0) rather
// than a FIN, so the client reads "connection reset by peer".
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("emulators: response writer cannot be hijacked; faults need HTTP/1.1")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
