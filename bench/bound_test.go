package main

import (
	"math"
	"testing"
)

// The bound is the peer's CPU of the same round plus the sha256 of twice the
// stored bytes and once the stream, and the ratio is the median of the
// rounds' ratios.
func TestRestoreBoundRatio(t *testing.T) {
	const perByte = 1e-9
	dba := &Result{Samples: []Sample{
		{UserS: 9, SysS: 1, BytesIn: 1e9, BytesOut: 3e9},    // bound 6 + 5 = 11
		{UserS: 12, SysS: 0, BytesIn: 1e9, BytesOut: 3e9},   // bound 7 + 5 = 12
		{UserS: 13, SysS: 0.2, BytesIn: 1e9, BytesOut: 3e9}, // bound 8 + 5 = 13
	}}
	peer := &Result{Samples: []Sample{{UserS: 6}, {UserS: 7}, {UserS: 7, SysS: 1}}}
	ratio, bound, ok := restoreBoundRatio(dba, peer, perByte)
	if !ok || math.Abs(ratio-1.0) > 1e-9 || math.Abs(bound-12) > 1e-9 {
		t.Fatalf("restoreBoundRatio = %v, %v, %v; want 1 (the median of 10/11, 12/12, 13.2/13), 12, true", ratio, bound, ok)
	}
	if _, _, ok := restoreBoundRatio(dba, nil, perByte); ok {
		t.Fatal("a bound without the peer's run")
	}
	if _, _, ok := restoreBoundRatio(dba, peer, 0); ok {
		t.Fatal("a bound without the sha256 cost")
	}
}

// sha256 costs something, and less than 10 ns a byte (100 MB/s) on any
// machine that runs the bench.
func TestSHA256CPUPerByte(t *testing.T) {
	perByte, err := sha256CPUPerByte()
	if err != nil {
		t.Fatal(err)
	}
	if perByte <= 0 || perByte > 1e-8 {
		t.Fatalf("sha256 costs %g CPU-s a byte", perByte)
	}
}
