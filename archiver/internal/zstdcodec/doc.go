// Package zstdcodec is the archiver's seam around zstd: one encoder and one
// decoder interface with two implementations that write and read the same
// standard zstd stream (one frame, content checksum on).
//
//   - libzstd, the reference C library, through cgo (linked from the
//     system's libzstd via pkg-config), in every build with cgo: make build
//     and the job image. It is what `zstd` itself runs, at about half the
//     CPU per byte of the pure-Go encoder (README, "Speed and memory").
//   - github.com/klauspost/compress/zstd, pure Go, in builds without cgo
//     (CGO_ENABLED=0 go build / go install), so the CLI still builds
//     anywhere Go does.
//
// NewEncoder and NewDecoder pick the build's implementation; the others
// stay available so tests can decode each one's output with the other.
//
// The package knows nothing of parts, hashes or storage: it only turns
// bytes into a zstd stream and back.
package zstdcodec
