package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// BenchmarkUpload64MiB compares, against fake-gcs-server, the two ways to
// write one 64 MiB object: the driver's 8 staged parts of 8 MiB put
// concurrently then composed, and one storage.Writer streaming the bytes in
// order (a resumable upload in the SDK's default 16 MiB chunks). Run with
//
//	go test ./drivers/gcs -run '^$' -bench Upload64MiB -benchtime 10x -count 5
//
// The emulator keeps objects in memory and copies bytes to compose, so the
// figures compare request patterns on one machine, not GCS throughput.
func BenchmarkUpload64MiB(b *testing.B) {
	const size, parts = 64 << 20, 8
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	ctx := context.Background()

	b.Run("staged_8_parts_compose", func(b *testing.B) {
		bk := openEmulator(b)
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			key := fmt.Sprintf("bench/%d", i)
			u, err := bk.NewUpload(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, parts)
			for p := range parts {
				chunk := data[p*size/parts : (p+1)*size/parts]
				wg.Go(func() { errs[p] = u.PutPart(ctx, p+1, chunk) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				b.Fatal(err)
			}
			if err := u.Complete(ctx, parts); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := bk.Delete(ctx, key); err != nil { // keep the emulator's memory flat
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	b.Run("streamed_writer", func(b *testing.B) {
		bk := openEmulator(b)
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			key := fmt.Sprintf("bench/%d", i)
			w := bk.bucket.Object(key).NewWriter(ctx)
			w.ContentType = "application/octet-stream"
			if _, err := bytes.NewReader(data).WriteTo(w); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := bk.Delete(ctx, key); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}
