// Package archiver turns a source's byte stream into a backup in a repo and
// back: source -> zstd -> (age, when the backup has recipients) ->
// fixed-size parts -> concurrent multipart upload -> parts object (each
// part's size and sha256) -> manifest (the commit marker), and for restore
// the mirror image: parallel ranged reads, one per part -> per-part sha256
// check -> (age decrypt, with an identity) -> zstd decode -> sink. Backups
// belong to sets (source type, database, name); retention and "latest" work
// within one.
//
// It talks to storage only through drivers.Bucket and to databases only
// through sources.Source; it never imports a concrete driver. Memory is
// bounded by the part size times (parts in flight + 1), whatever the size of
// the database. A backup exists only once its manifest does: a failed,
// cancelled or killed backup leaves at most unlisted leftovers, which Prune
// sweeps.
package archiver
