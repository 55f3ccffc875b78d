// Package s3 is the driver for repos of type s3: Amazon S3 and any
// S3-compatible store reachable at an endpoint URL (MinIO, Ceph RGW, IBM COS
// with HMAC keys, gofakes3 in tests).
//
// It is a thin translation layer over aws-sdk-go-v2's low-level multipart
// calls: it keeps the ETag of every part it put so that Complete can assemble
// exactly parts 1..n, and it maps every SDK error to a drivers.Code once, in
// classify. It must not retry, log credentials, or let an SDK type cross the
// drivers interface: retries and pacing belong to the archiver, which decides
// from the error class.
//
// Credentials come from the repo's Secret (keys AccessKeyId, SecretAccessKey
// and optionally SessionToken) or, when the Secret has none, from the SDK's
// default chain (environment, shared profile, IRSA web identity, instance
// role), so a pod with a service account needs no static keys.
package s3

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

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/dbarchive/dbarchive/drivers"
)

// Type is the repo type this driver registers.
const Type = "s3"

// Secret keys this driver reads.
const (
	SecretAccessKeyID     = "AccessKeyId"
	SecretSecretAccessKey = "SecretAccessKey"
	SecretSessionToken    = "SessionToken"
)

// DefaultRegion is the signing region when the repo names none. S3-compatible
// stores generally accept any region; AWS redirects to the right one.
const DefaultRegion = "us-east-1"

// limits are S3's documented multipart limits.
var limits = drivers.Limits{MaxParts: 10000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30}

func init() { drivers.Register(Type, New) }

// Bucket is an s3 repo.
type Bucket struct {
	client   *awss3.Client
	http     aws.HTTPClient
	bucket   string
	pageSize int32
}

// New validates cfg and opens the bucket. No request is sent unless
// cfg.CreateBucket asks for the bucket to be created when missing.
func New(ctx context.Context, cfg drivers.Config) (drivers.Bucket, error) {
	if err := cfg.Require("bucket", cfg.Bucket); err != nil {
		return nil, err
	}
	if err := cfg.ValidEndpoint("endpoint", cfg.Endpoint); err != nil {
		return nil, err
	}
	static, err := cfg.SecretPair(SecretAccessKeyID, SecretSecretAccessKey)
	if err != nil {
		return nil, err
	}
	if !static && !cfg.Secrets.Get(SecretSessionToken).IsZero() {
		return nil, cfg.Invalid("secret key "+SecretSessionToken, "is set without %s and %s", SecretAccessKeyID, SecretSecretAccessKey)
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

	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if pool != nil {
			tr.TLSClientConfig.RootCAs = pool
		}
	})

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithHTTPClient(httpClient),
		// One attempt per call: the archiver retries by the Transient class
		// with its own backoff and budget. SDK retries underneath would
		// multiply the attempts and hide how long a part really took.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		// S3-compatible stores (IBM COS, gofakes3, older MinIO) reject the
		// flexible-checksum trailers aws-sdk-go-v2 sends by default; parts
		// carry Content-MD5 instead.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	source := "default chain"
	if static {
		source = "repo secret"
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cfg.Secrets.Get(SecretAccessKeyID).Reveal(),
			cfg.Secrets.Get(SecretSecretAccessKey).Reveal(),
			cfg.Secrets.Get(SecretSessionToken).Reveal(),
		)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// The default chain failed to read its own sources (a broken shared
		// config file, say); that is a setting a retry cannot fix.
		return nil, cfg.Invalid("credentials", "cannot load the AWS default configuration: %v", err)
	}
	// Freeze the client the loader may have extended (AWS_CA_BUNDLE), so
	// Close can drop its idle connections.
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		awsCfg.HTTPClient = bc.Freeze()
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	b := &Bucket{client: client, http: awsCfg.HTTPClient, bucket: cfg.Bucket, pageSize: int32(min(cfg.ListPageSize, 1000))}
	slog.Debug("opened s3 repo", "repo", cfg.Name, "bucket", cfg.Bucket, "region", region, "credentials", source)
	if cfg.CreateBucket {
		if err := b.createBucket(ctx, cfg.Name, region); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// createBucket creates the bucket when HeadBucket says it is missing.
func (b *Bucket) createBucket(ctx context.Context, repo, region string) error {
	_, err := b.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &b.bucket})
	if err == nil {
		return nil
	}
	if drivers.CodeOf(classify("head bucket", b.bucket, err)) != drivers.NotFound {
		return classify("head bucket", b.bucket, err)
	}
	in := &awss3.CreateBucketInput{Bucket: &b.bucket}
	// us-east-1 is the one region that must not be named as a constraint.
	if region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err = b.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return classify("create bucket", b.bucket, err)
	}
	slog.Info("created bucket", "repo", repo, "bucket", b.bucket)
	return nil
}

func (b *Bucket) Limits() drivers.Limits { return limits }

func (b *Bucket) Close() error {
	if c, ok := b.http.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
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
	status := responseStatus(err)
	// A request that got no answer is classed by what broke: a cancelled
	// context (final), a deadline or a dropped connection (worth a retry).
	// The SDK wraps those in its own operation errors, which unwrap.
	if status == 0 {
		if c := drivers.ClassifyNetwork(err); c != drivers.Unknown {
			return c
		}
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchBucket":
			return drivers.NotFound
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return drivers.PermissionDenied
		case "SlowDown", "RequestTimeout", "InternalError":
			return drivers.Transient
		case "InvalidRange":
			return drivers.Permanent
		}
	}
	if c := drivers.ClassifyHTTPStatus(status); c != drivers.Unknown {
		return c
	}
	return drivers.Permanent
}

// responseStatus is the HTTP status the service answered with, or 0 when the
// request got no answer. The SDK reports a failed send as a response error
// with status 0 too, so the status, not the error type, tells them apart.
func responseStatus(err error) int {
	var respErr *awshttp.ResponseError
	if !errors.As(err, &respErr) || respErr.ResponseError == nil || respErr.Response == nil || respErr.Response.Response == nil {
		return 0
	}
	return respErr.HTTPStatusCode()
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
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return drivers.ObjectInfo{}, classify("stat", key, err)
	}
	return drivers.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
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
	in := &awss3.GetObjectInput{Bucket: &b.bucket, Key: &key}
	switch {
	case offset == 0 && length == -1:
		// The whole object: no Range, so an empty object reads fine.
	case length == -1:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	default:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
			// S3 answers 416 for a range that starts at the size, which the
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
	in := &awss3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}
	if b.pageSize > 0 {
		in.MaxKeys = aws.Int32(b.pageSize)
	}
	var out []drivers.ObjectInfo
	// S3 lists in UTF-8 binary order, which is Go's string order: no sort.
	p := awss3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, drivers.ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil && drivers.CodeOf(classify("delete", key, err)) != drivers.NotFound {
		return classify("delete", key, err)
	}
	return nil
}

func (b *Bucket) NewUpload(ctx context.Context, key string) (drivers.Upload, error) {
	const op = "begin upload"
	if err := checkKey(op, key); err != nil {
		return nil, err
	}
	out, err := b.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return nil, classify(op, key, err)
	}
	return &upload{b: b, key: key, id: aws.ToString(out.UploadId), etags: map[int32]string{}}, nil
}

func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]drivers.PendingUpload, error) {
	var out []drivers.PendingUpload
	p := awss3.NewListMultipartUploadsPaginator(b.client, &awss3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload" {
				// gofakes3 answers NoSuchUpload for a bucket that never had
				// an upload; S3 itself lists nothing. Either way: none.
				return nil, nil
			}
			return nil, classify("list uploads", prefix, err)
		}
		for _, u := range page.Uploads {
			out = append(out, drivers.PendingUpload{Key: aws.ToString(u.Key), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
	}
	return out, nil
}

func (b *Bucket) AbortUpload(ctx context.Context, p drivers.PendingUpload) error {
	return b.abort(ctx, p.Key, p.ID)
}

// abort ends a multipart upload; one that is already gone is not an error.
func (b *Bucket) abort(ctx context.Context, key, id string) error {
	_, err := b.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: &key, UploadId: &id})
	if err != nil && drivers.CodeOf(classify("abort upload", key, err)) != drivers.NotFound {
		return classify("abort upload", key, err)
	}
	return nil
}

type upload struct {
	b   *Bucket
	key string
	id  string

	mu    sync.Mutex
	etags map[int32]string // by part number; a re-put replaces
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
	out, err := u.b.client.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket:        &u.b.bucket,
		Key:           &u.key,
		UploadId:      &u.id,
		PartNumber:    aws.Int32(int32(n)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return classify(op, u.key, err)
	}
	u.mu.Lock()
	u.etags[int32(n)] = aws.ToString(out.ETag)
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
	completed := make([]types.CompletedPart, parts)
	u.mu.Lock()
	for i := range completed {
		n := int32(i + 1)
		etag, ok := u.etags[n]
		if !ok {
			u.mu.Unlock()
			// Checked here, not left to the service: some S3-compatible
			// stores assemble whatever parts they are given, and a hole
			// would make a truncated object that looks like a backup.
			return drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part %d was not put", n))
		}
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(n), ETag: aws.String(etag)}
	}
	u.mu.Unlock()
	_, err := u.b.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          &u.b.bucket,
		Key:             &u.key,
		UploadId:        &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	return classify(op, u.key, err)
}

// completeEmpty makes a zero-byte object: S3 refuses to complete a multipart
// upload without parts, so the upload is dropped and the object is put whole.
func (u *upload) completeEmpty(ctx context.Context) error {
	if err := u.b.abort(ctx, u.key, u.id); err != nil {
		return err
	}
	_, err := u.b.client.PutObject(ctx, &awss3.PutObjectInput{
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
