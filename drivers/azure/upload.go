package azure

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// upload is one block blob being staged. Block ids are base64 of
// "<upload id>-<6-digit part number>": every id of a blob has the same
// length, as Azure requires, and ids differ between uploads, so a crashed
// upload's leftover blocks under the same key can never be committed by
// this one.
type upload struct {
	b      *Bucket
	key    string
	client *blockblob.Client
	id     string

	mu sync.Mutex
	// staged records the parts whose block is staged; a part of zero bytes
	// is recorded as empty and left out of the block list.
	staged map[int]partState
	// sent is set once a block went to the service; before that Abort has
	// nothing to discard.
	sent bool
	done bool
}

type partState int

const (
	partStaged partState = iota + 1
	partEmpty
)

// NewUpload sends nothing: Azure creates the pending blob with its first
// staged block.
func (b *Bucket) NewUpload(_ context.Context, key string) (driver.Upload, error) {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	return &upload{
		b:      b,
		key:    key,
		client: b.client.NewBlockBlobClient(key),
		id:     hex.EncodeToString(raw[:]),
		staged: map[int]partState{},
	}, nil
}

func (u *upload) Key() string { return u.key }

func (u *upload) blockID(n int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", u.id, n))
}

func (u *upload) PutPart(ctx context.Context, n int, data []byte) error {
	const op = "put part"
	if len(data) == 0 {
		// Azure refuses an empty block; an empty part adds nothing to the
		// blob, so it is only remembered as put.
		if err := ctx.Err(); err != nil {
			return u.b.fail(op, u.key, err)
		}
		u.set(n, partEmpty)
		return nil
	}
	sum := md5.Sum(data)
	u.mu.Lock()
	u.sent = true
	u.mu.Unlock()
	_, err := u.client.StageBlock(ctx, u.blockID(n), streaming.NopCloser(bytes.NewReader(data)), &blockblob.StageBlockOptions{
		// Content-MD5 makes the service reject a block damaged in transit.
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	if err != nil {
		// A failed re-put must not let Complete use the older block.
		u.set(n, 0)
		return u.b.fail(op, u.key, err)
	}
	u.set(n, partStaged)
	return nil
}

func (u *upload) set(n int, s partState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s == 0 {
		delete(u.staged, n)
	} else {
		u.staged[n] = s
	}
}

func (u *upload) Complete(ctx context.Context, parts int) error {
	ids := make([]string, 0, parts)
	var missing []int
	u.mu.Lock()
	for n := 1; n <= parts; n++ {
		switch u.staged[n] {
		case partStaged:
			ids = append(ids, u.blockID(n))
		case partEmpty:
		default:
			missing = append(missing, n)
		}
	}
	u.mu.Unlock()
	if len(missing) > 0 {
		// Checked here, not left to the service: a block list that skips a
		// part is valid to Azure and would commit a truncated object.
		if len(missing) > 10 {
			missing = missing[:10]
		}
		return drivers.Errorf(drivers.Permanent, "complete", u.key, fmt.Errorf("parts never put (first ones): %v", missing))
	}
	// Zero ids commit an empty blob, which is what zero parts mean.
	if _, err := u.client.CommitBlockList(ctx, ids, nil); err != nil {
		return u.b.fail("complete", u.key, err)
	}
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
	return nil
}

// Abort discards the staged blocks (see discardUncommitted for how, and for
// what stays when an object already exists under the key).
func (u *upload) Abort(ctx context.Context) error {
	u.mu.Lock()
	done, sent := u.done, u.sent
	u.mu.Unlock()
	if done || !sent {
		// Completed: nothing is pending and the object must stay. Nothing
		// sent: nothing to discard.
		return nil
	}
	return u.b.discardUncommitted(ctx, u.key)
}
