package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbarchive/dbarchive/archiver/internal/zstdcodec"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
)

// BackupOptions tune one backup. The zero value gets the defaults.
type BackupOptions struct {
	// Prefix is the key prefix of the repo's backups.
	Prefix string
	// Name is a free label recorded in the manifest.
	Name string
	// Level is the zstd level, 1 to 22. Left 0, the backup runs the
	// default setting: DefaultLevel with DefaultHashLog and DefaultMinMatch
	// (unless those are set), and the manifest records DefaultLevel.
	Level int
	// PartSize is the size of the first part (default 5 MiB); later parts
	// grow as the stream grows so the driver's part limit is never reached.
	PartSize int64
	// Concurrency is the number of parts uploading at once (default 4).
	Concurrency int
	// EncoderConcurrency is the number of zstd workers (default GOMAXPROCS).
	EncoderConcurrency int
	// WindowLog is log2 of the zstd match window (default 21: 2 MiB, what
	// the zstd command uses at level 3; the pure-Go encoder's own default of
	// 8 MiB costs 26 MB more heap for 0.01% smaller output on dumps).
	WindowLog int
	// HashLog and MinMatch tune libzstd's match finder: log2 of its hash
	// table's entries and the shortest match it looks for (0: the level's
	// own, or DefaultHashLog and DefaultMinMatch when Level is left 0).
	// The pure-Go encoder has no such knobs and ignores them.
	HashLog  int
	MinMatch int
	// StallTimeout aborts the backup when the source writes nothing for this
	// long (0: DefaultStallTimeout; negative: never). Writes block while
	// every part upload hangs, so it is also the backstop behind the
	// storage layer's request timeouts.
	StallTimeout time.Duration
	// Recipients, when set, encrypt the backup: the stored object is one
	// age file (DataObjectEncrypted) that any of them decrypts. Only public
	// keys are needed; the manifest records them.
	Recipients []Recipient
	// Progress, when set, is updated as the backup runs.
	Progress *Progress
	// Logger receives the pipeline's log lines (default: slog.Default()).
	Logger *slog.Logger
	// ToolVersion is recorded in the manifest.
	ToolVersion string
	// Now is the clock (tests).
	Now func() time.Time
}

func (o BackupOptions) withDefaults() BackupOptions {
	if o.Level == 0 {
		o.Level = DefaultLevel
		if o.HashLog == 0 {
			o.HashLog = DefaultHashLog
		}
		if o.MinMatch == 0 {
			o.MinMatch = DefaultMinMatch
		}
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.EncoderConcurrency <= 0 {
		o.EncoderConcurrency = runtime.GOMAXPROCS(0)
	}
	if o.WindowLog == 0 {
		o.WindowLog = DefaultWindowLog
	}
	if o.Progress == nil {
		o.Progress = new(Progress)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ToolVersion == "" {
		o.ToolVersion = "dev"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	return o
}

// BackupError is a failed backup. Nothing of it is listed: the upload was
// aborted and no manifest was written.
type BackupError struct {
	ID     string
	Source string
	Err    error
}

func (e *BackupError) Error() string {
	return fmt.Sprintf("backup %s of %s failed: %v", e.ID, e.Source, e.Err)
}

func (e *BackupError) Unwrap() error { return e.Err }

// Backup streams src into b under a new backup id and writes its manifest.
// On any failure — the source, the compressor, an upload, or ctx being
// cancelled — it aborts the upload, writes no manifest, and returns a
// *BackupError carrying the cause.
func Backup(ctx context.Context, b *drivers.Bucket, src sources.Source, opts BackupOptions) (*Manifest, error) {
	opts = opts.withDefaults()
	start := opts.Now().UTC()
	id := NewID(start)
	fail := func(err error) (*Manifest, error) {
		return nil, &BackupError{ID: id, Source: src.Describe(), Err: err}
	}
	if opts.Level < 1 || opts.Level > 22 {
		return fail(fmt.Errorf("compression level %d is outside 1..22", opts.Level))
	}
	plan, err := NewPartPlan(opts.PartSize, b.Limits())
	if err != nil {
		return fail(err)
	}
	var encryption *EncryptionInfo
	dataObject := DataObject
	if len(opts.Recipients) > 0 {
		if opts.Recipients, err = checkRecipients(opts.Recipients); err != nil {
			return fail(err)
		}
		encryption = &EncryptionInfo{Scheme: EncryptionAge}
		for _, r := range opts.Recipients {
			encryption.Recipients = append(encryption.Recipients, r.String())
		}
		dataObject = DataObjectEncrypted
	}
	if err := src.Check(ctx); err != nil {
		return fail(err)
	}
	log := opts.Logger.With("backup", id)
	log.Info("backup started", "source", src.Describe(), "partSize", plan.Base, "concurrency", opts.Concurrency, "level", opts.Level, "hashLog", opts.HashLog, "minMatch", opts.MinMatch, "encrypted", encryption != nil)

	dataKey := objectKey(opts.Prefix, id, dataObject)
	// The table scanner is a tee beside the pipeline: it records the
	// tables and fails a dump that did not end properly before the upload
	// completes.
	scan := newTableScan(src)
	res, err := upload(ctx, b, dataKey, plan, opts, log, scan.dump(src.Dump))
	if err != nil {
		return fail(err)
	}
	// The data object alone, or with its parts object, is invisible; on a
	// later failure remove it now rather than waiting for prune's sweep.
	partsKey := objectKey(opts.Prefix, id, PartsObject)
	cleanup := func(keys ...string) {
		cctx, cancel := drivers.CleanupContext(ctx)
		defer cancel()
		for _, k := range keys {
			if err := b.Delete(cctx, k); err != nil {
				log.Warn("removing what the failed backup left failed; prune will sweep it", "key", k, "error", err)
			}
		}
	}
	parts, err := json.Marshal(&PartIndex{ID: id, Parts: res.partList})
	if err == nil {
		err = putSmallObject(ctx, b, partsKey, parts)
	}
	if err != nil {
		cleanup(dataKey)
		return fail(fmt.Errorf("write parts object: %w", err))
	}
	partsSum := sha256.Sum256(parts)
	tables, tablesInfo, err := scan.encode(id)
	if err == nil && tables != nil && encryption != nil {
		// Table names and row counts say what the database holds: an
		// encrypted backup encrypts its table list to the same keys.
		tables, err = encryptTableList(tables, tablesInfo, opts.Recipients)
	}
	tablesKey := ""
	if err == nil && tables != nil {
		tablesKey = objectKey(opts.Prefix, id, tablesInfo.Object)
		err = putSmallObject(ctx, b, tablesKey, tables)
	}
	if err != nil {
		cleanup(partsKey, dataKey)
		return fail(fmt.Errorf("write table list: %w", err))
	}
	m := &Manifest{
		ID:                 id,
		Name:               opts.Name,
		StartTime:          start,
		EndTime:            opts.Now().UTC(),
		Source:             SourceInfo{Type: src.Type(), Database: src.Database()},
		Tool:               ToolInfo{Name: "dbarchive", Version: opts.ToolVersion},
		Compression:        "zstd",
		CompressionLevel:   opts.Level,
		DataObject:         dataObject,
		UncompressedSize:   res.uncompressedSize,
		StoredSize:         res.storedSize,
		UncompressedSHA256: res.uncompressedSHA,
		StoredSHA256:       res.storedSHA,
		PartSize:           plan.Base,
		PartCount:          res.parts,
		PartsObject:        PartsObject,
		PartsSHA256:        hex.EncodeToString(partsSum[:]),
		Tables:             tablesInfo,
		Encryption:         encryption,
	}
	m.FormatVersion = formatFor(m)
	if f, ok := src.(sources.Formatted); ok {
		m.Source.Format = f.Format()
	}
	if err := writeManifest(ctx, b, opts, m, log); err != nil {
		cleanup(tablesKey, partsKey, dataKey)
		return fail(fmt.Errorf("write manifest: %w", err))
	}
	log.Info("backup finished", "stored", m.StoredSize, "uncompressed", m.UncompressedSize, "parts", m.PartCount, "duration", m.Duration().Round(time.Millisecond))
	return m, nil
}

func writeManifest(ctx context.Context, b *drivers.Bucket, opts BackupOptions, m *Manifest, log *slog.Logger) error {
	data, err := m.Encode()
	if err != nil {
		return err
	}
	key := objectKey(opts.Prefix, m.ID, ManifestObject)
	return putSmallObject(ctx, b, key, data)
}

// putSmallObject stores data under key as a one-part upload. The Bucket
// retries each call.
func putSmallObject(ctx context.Context, b *drivers.Bucket, key string, data []byte) error {
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		return err
	}
	err = u.PutPart(ctx, 1, data)
	if err == nil {
		err = u.Complete(ctx, 1)
	}
	if err != nil {
		if aerr := u.Abort(ctx); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort the upload of %s: %w", key, aerr))
		}
	}
	return err
}

type uploadResult struct {
	parts                        int
	partList                     []PartInfo
	storedSize, uncompressedSize int64
	storedSHA, uncompressedSHA   string
}

// upload runs produce, which writes the uncompressed stream, through zstd
// (and age, when opts has recipients) into a multipart upload of key, and
// completes it. On any error the upload
// is aborted.
func upload(parent context.Context, b *drivers.Bucket, key string, plan PartPlan, opts BackupOptions, log *slog.Logger, produce func(context.Context, io.Writer) error) (uploadResult, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)

	// The encoder comes first: when it cannot be made, no upload has begun
	// and no worker runs, so there is nothing to abort or to leak.
	enc, err := zstdcodec.NewEncoder(zstdcodec.EncoderOptions{
		Level:       opts.Level,
		Concurrency: opts.EncoderConcurrency,
		WindowLog:   opts.WindowLog,
		HashLog:     opts.HashLog,
		MinMatch:    opts.MinMatch,
	})
	if err != nil {
		return uploadResult{}, fmt.Errorf("zstd encoder: %w", err)
	}
	defer enc.Release()
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		return uploadResult{}, err
	}
	pw := newPartWriter(ctx, cancel, u, plan, opts, log)
	// The encryption stage, when there is one, sits between the compressor
	// and the parts: zstd -> age -> parts. age buffers one 64 KiB chunk, so
	// the memory bound stays the part buffers'.
	var compressed io.Writer = pw
	var encrypter io.WriteCloser
	if len(opts.Recipients) > 0 {
		if encrypter, err = newEncrypter(pw, opts.Recipients); err != nil {
			cancel(err)
			if werr := pw.wait(); werr != nil {
				log.Warn("a part upload failed while the backup was being abandoned", "error", werr)
			}
			if aerr := u.Abort(ctx); aerr != nil {
				log.Warn("abort of the failed upload failed; prune will clean it up", "key", key, "error", aerr)
			}
			return uploadResult{}, err
		}
		compressed = encrypter
	}
	enc.Reset(compressed)
	sw := &sourceWriter{w: enc, hash: sha256.New(), progress: opts.Progress}
	stopWatchdog := watchStall(ctx, cancel, opts.StallTimeout, &sw.lastWrite)

	// The source gets the pipeline's context: a failed upload or a stall
	// must stop the dump tool too.
	prodErr := produce(ctx, sw)
	stopWatchdog()
	if prodErr == nil {
		prodErr = enc.Close()
	}
	if prodErr == nil && encrypter != nil {
		// Writes the last (short, final-flagged) age chunk.
		prodErr = encrypter.Close()
	}
	if prodErr == nil {
		prodErr = pw.Close()
	}
	if prodErr != nil {
		// Stop the workers first (nothing they upload can be used), so the
		// encoder's pending writes fail fast, then release its goroutines.
		cancel(prodErr)
		enc.Release()
	}
	err = firstCause(parent, context.Cause(ctx), pw.wait(), prodErr)
	if err == nil {
		err = u.Complete(ctx, pw.parts)
	}
	if err != nil {
		if aerr := u.Abort(ctx); aerr != nil {
			log.Warn("abort of the failed upload failed; prune will clean it up", "key", key, "error", aerr)
		}
		return uploadResult{}, err
	}
	return uploadResult{
		parts:            pw.parts,
		partList:         pw.partList(),
		storedSize:       pw.size,
		uncompressedSize: sw.size,
		storedSHA:        hex.EncodeToString(pw.hash.Sum(nil)),
		uncompressedSHA:  hex.EncodeToString(sw.hash.Sum(nil)),
	}, nil
}

// firstCause picks the error that explains a failed pipeline. When one stage
// fails the others fail after it (the source's writes start failing, the
// uploads get cancelled); those echoes are not the story.
func firstCause(parent context.Context, cause, upErr, prodErr error) error {
	switch {
	case parent.Err() != nil: // the caller cancelled: SIGINT, SIGTERM, a deadline
		return fmt.Errorf("interrupted: %w", context.Cause(parent))
	case cause == nil:
		return errors.Join(prodErr, upErr)
	case errors.Is(cause, errUploadFailed):
		return upErr
	case cause == prodErr:
		return prodErr
	default: // the stall watchdog
		return cause
	}
}

// errUploadFailed is the cancellation cause the part writer sets; the real
// error is kept in the part writer.
var errUploadFailed = errors.New("a part upload failed")

// sourceWriter hashes and counts the uncompressed stream on its way to the
// compressor.
type sourceWriter struct {
	w         io.Writer
	hash      hash.Hash
	size      int64
	progress  *Progress
	lastWrite atomic.Int64
}

func (s *sourceWriter) Write(p []byte) (int, error) {
	s.lastWrite.Store(time.Now().UnixNano())
	n, err := s.w.Write(p)
	s.hash.Write(p[:n])
	s.size += int64(n)
	s.progress.SourceBytes.Add(int64(n))
	return n, err
}

// watchStall cancels ctx when lastWrite has not moved for timeout.
func watchStall(ctx context.Context, cancel context.CancelCauseFunc, timeout time.Duration, lastWrite *atomic.Int64) (stop func()) {
	if timeout <= 0 {
		return func() {}
	}
	lastWrite.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(min(timeout/4, time.Second))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if time.Since(time.Unix(0, lastWrite.Load())) > timeout {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// partWriter cuts the compressed stream into parts and uploads them from a
// fixed pool of workers. Its buffers are the pipeline's memory bound:
// Concurrency+1 of them exist at most, one filling and the rest uploading.
type partWriter struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	u        *drivers.Upload
	plan     PartPlan
	log      *slog.Logger
	progress *Progress

	free chan []byte
	jobs chan part
	wg   sync.WaitGroup

	buf   []byte // the part being filled
	parts int    // parts handed to the workers
	size  int64
	hash  hash.Hash

	// mu guards err and sums: a worker records an error while the writer,
	// stopped by a cancellation of its own, may be reading it.
	mu   sync.Mutex
	err  error
	sums map[int]PartInfo // by part number, of the parts uploaded
}

type part struct {
	n    int
	data []byte
}

func newPartWriter(ctx context.Context, cancel context.CancelCauseFunc, u *drivers.Upload, plan PartPlan, opts BackupOptions, log *slog.Logger) *partWriter {
	w := &partWriter{
		ctx: ctx, cancel: cancel, u: u, plan: plan, log: log, progress: opts.Progress,
		free: make(chan []byte, opts.Concurrency+1),
		jobs: make(chan part),
		hash: sha256.New(),
		sums: map[int]PartInfo{},
	}
	for range opts.Concurrency + 1 {
		w.free <- nil // buffers are allocated on first use, at the size then due
	}
	for range opts.Concurrency {
		w.wg.Go(w.work)
	}
	return w
}

func (w *partWriter) work() {
	for p := range w.jobs {
		if w.ctx.Err() == nil {
			// Hashed here, in parallel, rather than in the writer, which
			// already hashes the whole object.
			sum := sha256.Sum256(p.data)
			// The Bucket retries the part; its error names the part and key.
			if err := w.u.PutPart(w.ctx, p.n, p.data); err != nil {
				w.fail(err)
			} else {
				w.mu.Lock()
				w.sums[p.n] = PartInfo{Size: int64(len(p.data)), SHA256: hex.EncodeToString(sum[:])}
				w.mu.Unlock()
				w.progress.StoredBytes.Add(int64(len(p.data)))
				w.progress.Parts.Add(1)
			}
		}
		w.free <- p.data[:0]
	}
}

// fail records the first upload error and stops the pipeline.
func (w *partWriter) fail(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
	}
	w.mu.Unlock()
	if first {
		w.cancel(errUploadFailed)
	}
}

// firstErr is the first upload error, or nil.
func (w *partWriter) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *partWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			if err := w.takeBuffer(); err != nil {
				return written, err
			}
		}
		want := int(w.plan.Size(w.parts + 1))
		k := min(want-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		written += k
		if len(w.buf) == want {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// takeBuffer waits for a free buffer and makes sure it can hold the next
// part whole, so append never reallocates.
func (w *partWriter) takeBuffer() error {
	select {
	case buf := <-w.free:
		if want := int(w.plan.Size(w.parts + 1)); cap(buf) < want {
			buf = make([]byte, 0, want)
		}
		w.buf = buf
		return nil
	case <-w.ctx.Done():
		return w.stopErr()
	}
}

func (w *partWriter) stopErr() error {
	if err := w.firstErr(); err != nil {
		return err
	}
	return context.Cause(w.ctx)
}

func (w *partWriter) flush() error {
	if w.parts+1 > w.plan.MaxParts {
		err := fmt.Errorf("the stream needs more than %d parts", w.plan.MaxParts)
		w.fail(err)
		return err
	}
	w.parts++
	w.size += int64(len(w.buf))
	w.hash.Write(w.buf)
	select {
	case w.jobs <- part{n: w.parts, data: w.buf}:
		w.buf = nil
		return nil
	case <-w.ctx.Done():
		return w.stopErr()
	}
}

// Close hands the last, partial part to the workers.
func (w *partWriter) Close() error {
	if len(w.buf) > 0 || w.parts == 0 {
		if w.buf == nil {
			w.buf = []byte{}
		}
		return w.flush()
	}
	return nil
}

// partList is the size and sha256 of parts 1..parts, in order; call it
// after wait returned nil.
func (w *partWriter) partList() []PartInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]PartInfo, w.parts)
	for n := range out {
		out[n] = w.sums[n+1]
	}
	return out
}

// wait stops the workers and returns the first upload error.
func (w *partWriter) wait() error {
	close(w.jobs)
	w.wg.Wait()
	return w.firstErr()
}
