package main

import (
	"crypto/sha256"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// The restore's CPU target (at most the peer's) is out of reach with every
// check kept: dbarchive hashes the stored object twice (each part against
// the parts object, the whole against the manifest) and the uncompressed
// stream once, and `rclone cat | zstd -d | pg_restore` hashes nothing.
// The rest of the work (download, decode, pg_restore) is the same on both
// sides. So the lowest CPU dbarchive can restore in is the peer's plus
// those hashes, and the report judges dbarchive against that bound too,
// from the same round's figures and this machine's measured sha256 cost.

// hashedBytesPerRestore is what a restore of a backup with stored and
// uncompressed bytes runs through sha256.
func hashedBytesPerRestore(stored, uncompressed int64) int64 {
	return 2*stored + uncompressed
}

// sha256CPUPerByte measures the CPU seconds per byte of Go's sha256 (the
// one dbarchive runs; SHA-NI where the CPU has it) on this machine, as the
// CPU time of the one thread doing it, so other work on the machine does
// not count.
func sha256CPUPerByte() (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	const rounds = 512 // 512 MiB: about half a second
	h := sha256.New()
	h.Write(buf) // warm
	before, err := threadCPU()
	if err != nil {
		return 0, err
	}
	for range rounds {
		h.Write(buf)
	}
	after, err := threadCPU()
	if err != nil {
		return 0, err
	}
	if after <= before {
		return 0, fmt.Errorf("sha256 of %d MiB took no measurable CPU time", rounds)
	}
	return (after - before) / float64(rounds*len(buf)), nil
}

// threadCPU is the calling thread's user plus system time in seconds.
func threadCPU() (float64, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
}

// restoreBoundRatio is the median over rounds of dbarchive's restore CPU
// over its bound: the peer's CPU in the same round plus the sha256 of the
// bytes dbarchive hashed in it, at perByte CPU seconds a byte.
func restoreBoundRatio(dba, peer *Result, perByte float64) (ratio, boundS float64, ok bool) {
	if dba == nil || peer == nil || perByte <= 0 {
		return 0, 0, false
	}
	var got, bound []float64
	for i := range min(len(dba.Samples), len(peer.Samples)) {
		d := dba.Samples[i]
		got = append(got, d.CPUS())
		bound = append(bound, peer.Samples[i].CPUS()+perByte*float64(hashedBytesPerRestore(d.BytesIn, d.BytesOut)))
	}
	if len(got) == 0 {
		return 0, 0, false
	}
	return pairRatio(got, bound), median(bound), true
}
