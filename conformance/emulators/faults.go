package emulators

import (
	"net/http"
	"sync"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
)

// Faults arms failures of part uploads (PUT ?partNumber=&uploadId=) on the
// fault Proxy in front of an S3 emulator: a 500 answer, or a connection
// reset. It is a shorthand for tests of whole backups; the conformance suite
// arms the Proxy directly. The zero value is ready; faults armed before
// S3WithFaults attaches a proxy are kept until then.
type Faults struct {
	mu      sync.Mutex
	proxy   *Proxy
	pending []Fault
	armed   []*Fault
}

func isPartUpload(r *http.Request) bool {
	q := r.URL.Query()
	return q.Has("partNumber") && q.Has("uploadId")
}

// Fail500 makes the next n part uploads answer 500 InternalError. Faults
// apply in the order they were armed.
func (f *Faults) Fail500(n int) {
	f.arm(Fault{Method: http.MethodPut, Match: isPartUpload, Times: n, Action: Status, Status: http.StatusInternalServerError})
}

// Reset makes the next n part uploads (after pending 500s) end with the
// connection reset before any answer.
func (f *Faults) Reset(n int) {
	f.arm(Fault{Method: http.MethodPut, Match: isPartUpload, Times: n, Action: Reset})
}

func (f *Faults) arm(flt Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.proxy == nil {
		f.pending = append(f.pending, flt)
		return
	}
	f.armed = append(f.armed, f.proxy.Inject(flt))
}

func (f *Faults) attach(p *Proxy) {
	f.mu.Lock()
	pending := f.pending
	f.proxy, f.pending = p, nil
	f.mu.Unlock()
	for _, flt := range pending {
		f.arm(flt)
	}
}

// Injected reports how many 500s and resets were injected so far.
func (f *Faults) Injected() (status500, resets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.proxy == nil {
		return 0, 0
	}
	f.proxy.mu.Lock()
	defer f.proxy.mu.Unlock()
	for _, a := range f.armed {
		if a.Action == Status {
			status500 += a.fired
		} else {
			resets += a.fired
		}
	}
	return status500, resets
}

// S3WithFaults is S3 behind a fault Proxy on which f arms its faults.
func S3WithFaults(t testing.TB, f *Faults) drivers.Config {
	t.Helper()
	cfg, p := WithProxy(t, S3(t))
	f.attach(p)
	return cfg
}
