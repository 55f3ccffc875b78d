// Package ibmcos is the driver for repos of type ibmcos: IBM Cloud Object
// Storage, through IBM's fork of aws-sdk-go (github.com/IBM/ibm-cos-sdk-go).
//
// It authenticates in one of two ways, chosen by the keys of the repo's
// Secret (the article's names):
//   - HMAC keys HmacAccessKeyId and HmacSecretAccessKey, signed like S3
//     (AWS Signature V4);
//   - an IAM API key ApiKey with the ServiceInstanceId it belongs to; the SDK's
//     ibmiam credentials exchange the key for a token at the repo's
//     AuthEndpoint (default https://iam.cloud.ibm.com/identity/token) and every
//     request then carries "Authorization: Bearer <token>".
//
// A Secret holding both kinds is refused: silently preferring one would hide
// which identity a backup really runs as.
//
// Like drivers/s3 it is a thin translation layer over the low-level multipart
// calls: it keeps the ETag of every part it put, and maps every SDK error to a
// drivers.Code once, in classify. It must not retry (the archiver does, by
// class), log credentials or tokens, or let an SDK type cross the drivers
// interface. The structure deliberately mirrors drivers/s3, but shares no code
// with it: the two SDKs have nothing in common at the type level.
package ibmcos

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/IBM/ibm-cos-sdk-go/aws"
	"github.com/IBM/ibm-cos-sdk-go/aws/awserr"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials/ibmiam"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials/ibmiam/token"
	"github.com/IBM/ibm-cos-sdk-go/aws/request"
	"github.com/IBM/ibm-cos-sdk-go/aws/session"
	cos3 "github.com/IBM/ibm-cos-sdk-go/service/s3"

	"github.com/dbarchive/dbarchive/drivers"
)

// Type is the repo type this driver registers.
const Type = "ibmcos"

// Secret keys this driver reads.
const (
	SecretHmacAccessKeyID     = "HmacAccessKeyId"
	SecretHmacSecretAccessKey = "HmacSecretAccessKey"
	SecretAPIKey              = "ApiKey"
	SecretServiceInstanceID   = "ServiceInstanceId"
)

// DefaultRegion is the signing region when the repo names none. IBM COS
// ignores the region of a V4 signature as long as one is given; "us-standard"
// is the location constraint of its US cross-region buckets.
const DefaultRegion = "us-standard"

// DefaultAuthEndpoint is IBM Cloud's IAM token endpoint.
const DefaultAuthEndpoint = "https://iam.cloud.ibm.com/identity/token"

// limits are IBM COS's multipart limits, the same as S3's.
var limits = drivers.Limits{MaxParts: 10000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30}

func init() { drivers.Register(Type, New) }

// Bucket is an ibmcos repo.
type Bucket struct {
	client    *cos3.S3
	transport *http.Transport
	bucket    string
	pageSize  int64
}

// New validates cfg and opens the bucket. No request is sent (not even to the
// token endpoint) unless cfg.CreateBucket asks for the bucket to be created
// when missing.
func New(ctx context.Context, cfg drivers.Config) (drivers.Bucket, error) {
	if err := cfg.Require("bucket", cfg.Bucket); err != nil {
		return nil, err
	}
	// IBM COS endpoints depend on the bucket's location and resiliency
	// (s3.us-south..., s3.eu-de..., private or direct); guessing one from the
	// region would send backups to the wrong place or nowhere.
	if err := cfg.Require("serviceEndpoint", cfg.Endpoint); err != nil {
		return nil, err
	}
	if err := cfg.ValidEndpoint("serviceEndpoint", cfg.Endpoint); err != nil {
		return nil, err
	}
	if err := cfg.ValidEndpoint("authEndpoint", cfg.AuthEndpoint); err != nil {
		return nil, err
	}
	hmac, err := cfg.SecretPair(SecretHmacAccessKeyID, SecretHmacSecretAccessKey)
	if err != nil {
		return nil, err
	}
	apiKey := cfg.Secrets.Get(SecretAPIKey)
	instanceID := cfg.Secrets.Get(SecretServiceInstanceID)
	switch {
	case hmac && !apiKey.IsZero():
		return nil, cfg.Invalid("secret key "+SecretAPIKey, "is set together with %s/%s; give HMAC keys or an API key, not both",
			SecretHmacAccessKeyID, SecretHmacSecretAccessKey)
	case !hmac && apiKey.IsZero():
		return nil, cfg.Invalid("secret", "holds no credentials; give %s and %s, or %s and %s",
			SecretHmacAccessKeyID, SecretHmacSecretAccessKey, SecretAPIKey, SecretServiceInstanceID)
	case !apiKey.IsZero() && instanceID.IsZero():
		return nil, cfg.Invalid("secret key "+SecretServiceInstanceID, "is required with %s", SecretAPIKey)
	}
	pool, err := cfg.CertPool()
	if err != nil {
		return nil, err
	}
	if cfg.ListPageSize < 0 {
		return nil, cfg.Invalid("listPageSize", "must not be negative")
	}
	region := cfg.Region
	if region == "" {
		region = DefaultRegion
	}
	authEndpoint := cfg.AuthEndpoint
	if authEndpoint == "" {
		authEndpoint = DefaultAuthEndpoint
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	if pool != nil {
		transport.TLSClientConfig.RootCAs = pool
	}
	httpClient := &http.Client{Transport: transport}

	awsCfg := &aws.Config{
		Endpoint:         aws.String(cfg.Endpoint),
		Region:           aws.String(region),
		S3ForcePathStyle: aws.Bool(cfg.PathStyle),
		HTTPClient:       httpClient,
		// One attempt per call, for the token exchange too: the archiver
		// retries by the Transient class with its own backoff and budget;
		// SDK retries underneath would multiply the attempts.
		MaxRetries: aws.Int(0),
		// Never aws.LogDebug: the IAM signer logs the Authorization header.
		LogLevel: aws.LogLevel(aws.LogOff),
	}
	source := "hmac"
	if hmac {
		awsCfg.Credentials = credentials.NewStaticCredentials(
			cfg.Secrets.Get(SecretHmacAccessKeyID).Reveal(),
			cfg.Secrets.Get(SecretHmacSecretAccessKey).Reveal(), "")
	} else {
		source = "iam api key"
		// The token manager uses the same HTTP client (so the CA bundle
		// applies to the auth endpoint) and the same zero retries.
		awsCfg.Credentials = ibmiam.NewStaticCredentials(
			&aws.Config{HTTPClient: httpClient, MaxRetries: aws.Int(0)},
			authEndpoint, apiKey.Reveal(), instanceID.Reveal())
	}
	sess, err := session.NewSessionWithOptions(session.Options{
		Config: *awsCfg,
		// The repo's settings are the whole configuration: no shared
		// config file from the pod's home directory.
		SharedConfigState: session.SharedConfigDisable,
	})
	if err != nil {
		return nil, cfg.Invalid("serviceEndpoint", "cannot configure the IBM COS client: %v", err)
	}
	b := &Bucket{client: cos3.New(sess), transport: transport, bucket: cfg.Bucket, pageSize: int64(min(cfg.ListPageSize, 1000))}
	slog.Debug("opened ibmcos repo", "repo", cfg.Name, "bucket", cfg.Bucket, "credentials", source)
	if cfg.CreateBucket {
		if err := b.createBucket(ctx, cfg.Name); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// createBucket creates the bucket when HeadBucket says it is missing.
func (b *Bucket) createBucket(ctx context.Context, repo string) error {
	_, err := b.client.HeadBucketWithContext(ctx, &cos3.HeadBucketInput{Bucket: &b.bucket})
	if err == nil {
		return nil
	}
	if code(err) != drivers.NotFound {
		return classify("head bucket", b.bucket, err)
	}
	_, err = b.client.CreateBucketWithContext(ctx, &cos3.CreateBucketInput{Bucket: &b.bucket})
	var aerr awserr.Error
	if err != nil && !(errors.As(err, &aerr) && aerr.Code() == cos3.ErrCodeBucketAlreadyOwnedByYou) {
		return classify("create bucket", b.bucket, err)
	}
	slog.Info("created bucket", "repo", repo, "bucket", b.bucket)
	return nil
}

func (b *Bucket) Limits() drivers.Limits { return limits }

func (b *Bucket) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

// classify maps an SDK error to a drivers error class, naming op and key. It
// is the only place that knows the SDK's error shapes.
func classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return drivers.Errorf(code(err), op, key, err)
}

func code(err error) drivers.Code {
	var aerr awserr.Error
	if !errors.As(err, &aerr) {
		if c := drivers.ClassifyNetwork(err); c != drivers.Unknown {
			return c
		}
		return drivers.Permanent
	}
	switch aerr.Code() {
	case cos3.ErrCodeNoSuchKey, "NotFound", cos3.ErrCodeNoSuchUpload, cos3.ErrCodeNoSuchBucket:
		return drivers.NotFound
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return drivers.PermissionDenied
	case "SlowDown", "RequestTimeout", "InternalError", request.ErrCodeResponseTimeout:
		return drivers.Transient
	case "InvalidRange":
		return drivers.Permanent
	}
	var reqErr awserr.RequestFailure
	if errors.As(err, &reqErr) {
		if c := drivers.ClassifyHTTPStatus(reqErr.StatusCode()); c != drivers.Unknown {
			return c
		}
	}
	// aws-sdk-go v1 errors do not implement Unwrap: walk OrigErr to reach a
	// cancelled context, a broken connection or IAM's refusal.
	for cause := aerr.OrigErr(); cause != nil; {
		if c := drivers.ClassifyNetwork(cause); c != drivers.Unknown {
			return c
		}
		var refused *token.Error
		if errors.As(cause, &refused) {
			// IAM answered 400/401/403 with its JSON error: the API key
			// is wrong, revoked or not allowed.
			return drivers.PermissionDenied
		}
		next, ok := cause.(awserr.Error)
		if !ok {
			break
		}
		cause = next.OrigErr()
	}
	switch aerr.Code() {
	case request.CanceledErrorCode:
		return drivers.Permanent
	case request.ErrCodeRequestError:
		// A request that never got an answer: the network, not the request.
		return drivers.Transient
	case "TokenManagerRetrieveError":
		// IAM failed without refusing the key (a 5xx, an unreadable
		// answer): an outage of the token service, worth retrying.
		return drivers.Transient
	}
	return drivers.Permanent
}

func checkKey(op, key string) error {
	if key == "" {
		return drivers.Errorf(drivers.Permanent, op, key, errors.New("empty key"))
	}
	return nil
}

func (b *Bucket) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	if err := checkKey("stat", key); err != nil {
		return drivers.ObjectInfo{}, err
	}
	out, err := b.client.HeadObjectWithContext(ctx, &cos3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return drivers.ObjectInfo{}, classify("stat", key, err)
	}
	return drivers.ObjectInfo{Key: key, Size: aws.Int64Value(out.ContentLength), ModTime: aws.TimeValue(out.LastModified)}, nil
}

func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	const op = "read"
	if err := checkKey(op, key); err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, drivers.Errorf(drivers.Permanent, op, key, fmt.Errorf("invalid range offset %d length %d", offset, length))
	}
	if length == 0 {
		// HTTP has no empty range; Stat gives the same answers (NotFound,
		// offset past the end) without a body.
		return b.emptyAt(ctx, key, offset)
	}
	in := &cos3.GetObjectInput{Bucket: &b.bucket, Key: &key}
	switch {
	case offset == 0 && length == -1:
		// The whole object: no Range, so an empty object reads fine.
	case length == -1:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	default:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	}
	out, err := b.client.GetObjectWithContext(ctx, in)
	if err != nil {
		var aerr awserr.Error
		if errors.As(err, &aerr) && aerr.Code() == "InvalidRange" {
			// COS answers 416 for a range that starts at the size, which the
			// contract reads as zero bytes; only a start past it is an error.
			return b.emptyAt(ctx, key, offset)
		}
		return nil, classify(op, key, err)
	}
	return out.Body, nil
}

// emptyAt returns an empty reader when offset is at most the size of key.
func (b *Bucket) emptyAt(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	info, err := b.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, drivers.Errorf(drivers.Permanent, "read", key, fmt.Errorf("offset %d is past the end (size %d)", offset, info.Size))
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

func (b *Bucket) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	in := &cos3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}
	if b.pageSize > 0 {
		in.MaxKeys = aws.Int64(b.pageSize)
	}
	var out []drivers.ObjectInfo
	// COS lists in UTF-8 binary order, which is Go's string order: no sort.
	err := b.client.ListObjectsV2PagesWithContext(ctx, in, func(page *cos3.ListObjectsV2Output, _ bool) bool {
		for _, o := range page.Contents {
			out = append(out, drivers.ObjectInfo{Key: aws.StringValue(o.Key), Size: aws.Int64Value(o.Size), ModTime: aws.TimeValue(o.LastModified)})
		}
		return true
	})
	if err != nil {
		return nil, classify("list", prefix, err)
	}
	return out, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	_, err := b.client.DeleteObjectWithContext(ctx, &cos3.DeleteObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil && code(err) != drivers.NotFound {
		return classify("delete", key, err)
	}
	return nil
}

func (b *Bucket) NewUpload(ctx context.Context, key string) (drivers.Upload, error) {
	const op = "begin upload"
	if err := checkKey(op, key); err != nil {
		return nil, err
	}
	out, err := b.client.CreateMultipartUploadWithContext(ctx, &cos3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return nil, classify(op, key, err)
	}
	return &upload{b: b, key: key, id: aws.StringValue(out.UploadId), etags: map[int64]string{}}, nil
}

func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]drivers.PendingUpload, error) {
	var out []drivers.PendingUpload
	err := b.client.ListMultipartUploadsPagesWithContext(ctx, &cos3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: &prefix},
		func(page *cos3.ListMultipartUploadsOutput, _ bool) bool {
			for _, u := range page.Uploads {
				out = append(out, drivers.PendingUpload{Key: aws.StringValue(u.Key), ID: aws.StringValue(u.UploadId), Initiated: aws.TimeValue(u.Initiated)})
			}
			return true
		})
	if err != nil {
		var aerr awserr.Error
		if errors.As(err, &aerr) && aerr.Code() == cos3.ErrCodeNoSuchUpload {
			// gofakes3 answers NoSuchUpload for a bucket that never had an
			// upload; COS itself lists nothing. Either way: none.
			return nil, nil
		}
		return nil, classify("list uploads", prefix, err)
	}
	return out, nil
}

func (b *Bucket) AbortUpload(ctx context.Context, p drivers.PendingUpload) error {
	return b.abort(ctx, p.Key, p.ID)
}

// abort ends a multipart upload; one that is already gone is not an error.
func (b *Bucket) abort(ctx context.Context, key, id string) error {
	_, err := b.client.AbortMultipartUploadWithContext(ctx, &cos3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: &key, UploadId: &id})
	if err != nil && code(err) != drivers.NotFound {
		return classify("abort upload", key, err)
	}
	return nil
}

type upload struct {
	b   *Bucket
	key string
	id  string

	mu    sync.Mutex
	etags map[int64]string // by part number; a re-put replaces
}

func (u *upload) Key() string { return u.key }

func (u *upload) PutPart(ctx context.Context, n int, data []byte) error {
	op := fmt.Sprintf("put part %d", n)
	if n < 1 || n > limits.MaxParts {
		return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part number must be 1..%d", limits.MaxParts))
	}
	if int64(len(data)) > limits.MaxPartSize {
		return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part of %d bytes exceeds the %d-byte limit", len(data), limits.MaxPartSize))
	}
	sum := md5.Sum(data)
	out, err := u.b.client.UploadPartWithContext(ctx, &cos3.UploadPartInput{
		Bucket:        &u.b.bucket,
		Key:           &u.key,
		UploadId:      &u.id,
		PartNumber:    aws.Int64(int64(n)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		// COS verifies the part against it: corruption on the way is a
		// failed request, not a bad backup.
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return classify(op, u.key, err)
	}
	u.mu.Lock()
	u.etags[int64(n)] = aws.StringValue(out.ETag)
	u.mu.Unlock()
	return nil
}

func (u *upload) Complete(ctx context.Context, parts int) error {
	const op = "complete upload"
	if parts < 0 || parts > limits.MaxParts {
		return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part count must be 0..%d", limits.MaxParts))
	}
	if parts == 0 {
		return u.completeEmpty(ctx)
	}
	completed := make([]*cos3.CompletedPart, parts)
	u.mu.Lock()
	for i := range completed {
		n := int64(i + 1)
		etag, ok := u.etags[n]
		if !ok {
			u.mu.Unlock()
			// Checked here, not left to the service, so a hole can never
			// become a truncated object that looks like a backup.
			return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part %d was not put", n))
		}
		completed[i] = &cos3.CompletedPart{PartNumber: aws.Int64(n), ETag: aws.String(etag)}
	}
	u.mu.Unlock()
	_, err := u.b.client.CompleteMultipartUploadWithContext(ctx, &cos3.CompleteMultipartUploadInput{
		Bucket:          &u.b.bucket,
		Key:             &u.key,
		UploadId:        &u.id,
		MultipartUpload: &cos3.CompletedMultipartUpload{Parts: completed},
	})
	return classify(op, u.key, err)
}

// completeEmpty makes a zero-byte object: a multipart upload cannot complete
// without parts, so the upload is dropped and the object is put whole.
func (u *upload) completeEmpty(ctx context.Context) error {
	if err := u.b.abort(ctx, u.key, u.id); err != nil {
		return err
	}
	_, err := u.b.client.PutObjectWithContext(ctx, &cos3.PutObjectInput{
		Bucket:        &u.b.bucket,
		Key:           &u.key,
		Body:          bytes.NewReader(nil),
		ContentLength: aws.Int64(0),
	})
	return classify("complete upload", u.key, err)
}

func (u *upload) Abort(ctx context.Context) error {
	ctx, cancel := drivers.CleanupContext(ctx)
	defer cancel()
	return u.b.abort(ctx, u.key, u.id)
}
