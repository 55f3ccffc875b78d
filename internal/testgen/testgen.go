// Package testgen makes synthetic dump-like streams for tests and benchmarks:
// tab-separated rows of ids, words, dates and hex digests that zstd level 3
// shrinks about 3-4 times, as it does a real database dump, and never a
// stream of zeros (which would measure nothing).
//
// The rows are generated once into a pool larger than zstd's 8 MiB window and
// then written over and over, so a long stream costs the generator almost no
// CPU and the compressor still cannot match one round of the pool against the
// previous one. The command in cmd/testgen serves the same stream on stdout
// for exec: sources.
//
// It is test support: production code must never import it.
package testgen

import (
	"encoding/hex"
	"io"
	"math/rand/v2"
	"strconv"
)

// PoolSize is the length of the repeating pool: four times zstd's default
// window.
const PoolSize = 32 << 20

var words = []string{
	"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
	"Zoë", "Ñúñez", "Ødegaard", "日本語", "Ελληνικά", "persons", "orders", "invoice", "shipped",
	"pending", "cancelled", "Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "NULL", "\\N",
}

// notes are long repeated values, like the status texts and defaults that
// make real tables compress well.
var notes = []string{
	"customer asked for delivery before noon",
	"payment received, waiting for the warehouse",
	"address verified by the courier service",
	"discount applied from the spring campaign",
	"returned item, refund issued to the original card",
	"gift wrapping requested; include the printed note",
	"backordered: supplier confirmed the new date",
	"VIP account — handle with priority please",
}

// Pool returns PoolSize bytes of rows, the same for the same seed.
func Pool(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, 0, PoolSize+256)
	var raw [5]byte
	for id := int64(1); len(buf) < PoolSize; id++ {
		buf = strconv.AppendInt(buf, id, 10)
		buf = append(buf, '\t')
		for range 2 + r.IntN(4) {
			buf = append(buf, words[r.IntN(len(words))]...)
			buf = append(buf, ' ')
		}
		buf = append(buf, '\t')
		// Hex digests are what keeps the ratio realistic: 4 bits of
		// entropy per byte.
		v := r.Uint64()
		for i := range raw {
			raw[i] = byte(v >> (8 * i))
		}
		buf = hex.AppendEncode(buf, raw[:])
		buf = append(buf, "\t2026-"...)
		buf = strconv.AppendInt(buf, int64(1+r.IntN(12)), 10)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(1+r.IntN(28)), 10)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(r.IntN(1_000_000)), 10)
		buf = append(buf, ".00\t"...)
		buf = append(buf, notes[r.IntN(len(notes))]...)
		buf = append(buf, '\n')
	}
	return buf[:PoolSize]
}

// WriteStream writes n bytes of the pool (round after round) to w in writes
// of at most chunk bytes.
func WriteStream(w io.Writer, pool []byte, n int64, chunk int) error {
	off := 0
	for n > 0 {
		k := int(min(int64(chunk), n, int64(len(pool)-off)))
		if _, err := w.Write(pool[off : off+k]); err != nil {
			return err
		}
		n -= int64(k)
		off += k
		if off == len(pool) {
			off = 0
		}
	}
	return nil
}
