// Package s3 is the driver for repos of type s3: Amazon S3 and any
// S3-compatible store reachable at an endpoint URL (MinIO, Ceph RGW, IBM COS
// with HMAC keys, gofakes3 in tests).
//
// It adapts aws-sdk-go-v2's low-level multipart calls to the client interface
// of drivers/internal/s3like, which holds the protocol logic it shares with
// drivers/ibmcos (ETag bookkeeping, 416 handling, the delete rule, empty
// objects). The SDK's own retries are off: the portable layer
// (*drivers.Bucket) retries every call by error class.
//
// Credentials come from the repo's Secret (keys AccessKeyId, SecretAccessKey
// and optionally SessionToken) or, when the Secret has none, from the SDK's
// default chain (environment, shared profile, IRSA web identity, instance
// role), so a pod with a service account needs no static keys.
//
// Repo URL: s3://bucket/prefix?endpoint=&region=&path_style=, credentials in
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
	"github.com/dbarchive/dbarchive/drivers/internal/s3like"
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

func init() {
	drivers.Register(drivers.Registration{
		Type:   Type,
		Scheme: "s3",
		Params: []string{"endpoint", "region", "path_style"},
		Secrets: []drivers.SecretKey{
			{Key: SecretAccessKeyID, Env: "AWS_ACCESS_KEY_ID"},
			{Key: SecretSecretAccessKey, Env: "AWS_SECRET_ACCESS_KEY"},
			{Key: SecretSessionToken, Env: "AWS_SESSION_TOKEN"},
		},
		Open: New,
	})
}

// client adapts aws-sdk-go-v2 to s3like.Client.
type client struct {
	sdkErrors
	s3       *awss3.Client
	http     aws.HTTPClient
	bucket   string
	pageSize int32
}

// New validates cfg and opens the bucket. No request is sent unless
// cfg.CreateBucket asks for the bucket to be created when missing.
func New(ctx context.Context, cfg drivers.Config) (driver.Bucket, error) {
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
	if _, err := cfg.CertPool(); err != nil {
		return nil, err
	}
	if cfg.ListPageSize < 0 {
		return nil, cfg.Invalid("listPageSize", "must not be negative")
	}
	region := cfg.Region
	if region == "" {
		region = DefaultRegion
	}

	// The SDK's buildable client, so that AWS_CA_BUNDLE still applies, with
	// the timeouts and CA bundle every HTTP driver gets.
	var trErr error
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		trErr = cfg.ConfigureTransport(tr)
	})

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithHTTPClient(httpClient),
		// One attempt per call: the portable layer retries by class with
		// its backoff and budget; SDK retries underneath would multiply the
		// attempts and hide how long a call really took.
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
	// Close can drop its idle connections; freezing builds the transport.
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		awsCfg.HTTPClient = bc.Freeze()
	}
	if trErr != nil {
		return nil, trErr
	}
	c := &client{
		s3: awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
			if cfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
			}
			o.UsePathStyle = cfg.PathStyle
		}),
		http:     awsCfg.HTTPClient,
		bucket:   cfg.Bucket,
		pageSize: int32(min(cfg.ListPageSize, 1000)),
	}
	slog.Debug("opened s3 repo", "repo", cfg.Name, "bucket", cfg.Bucket, "region", region, "credentials", source)
	if cfg.CreateBucket {
		if err := c.createBucket(ctx, cfg.Name, region); err != nil {
			return nil, err
		}
	}
	return s3like.New(c), nil
}

// createBucket creates the bucket when HeadBucket says it is missing.
func (c *client) createBucket(ctx context.Context, repo, region string) error {
	_, err := c.s3.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &c.bucket})
	if err == nil {
		return nil
	}
	if s3like.Code(c, err) != drivers.NotFound {
		return classify("head bucket", c.bucket, err)
	}
	in := &awss3.CreateBucketInput{Bucket: &c.bucket}
	// us-east-1 is the one region that must not be named as a constraint.
	if region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err = c.s3.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return classify("create bucket", c.bucket, err)
	}
	slog.Info("created bucket", "repo", repo, "bucket", c.bucket)
	return nil
}

// classify maps an SDK error to a drivers error class, naming op and key.
func classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return drivers.Errorf(s3like.Code(sdkErrors{}, err), op, key, err)
}

// sdkErrors reads aws-sdk-go-v2's errors.
type sdkErrors struct{}

func (sdkErrors) ServiceCode(err error) (string, int) {
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	return code, responseStatus(err)
}

func (sdkErrors) Fallback(error) drivers.Code { return drivers.Unknown }

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

func (c *client) Close() error {
	if h, ok := c.http.(interface{ CloseIdleConnections() }); ok {
		h.CloseIdleConnections()
	}
	return nil
}

func (c *client) Head(ctx context.Context, key string) (driver.ObjectInfo, error) {
	out, err := c.s3.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &c.bucket, Key: &key})
	if err != nil {
		return driver.ObjectInfo{}, err
	}
	return driver.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

func (c *client) Get(ctx context.Context, key, rng string) (io.ReadCloser, error) {
	in := &awss3.GetObjectInput{Bucket: &c.bucket, Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	out, err := c.s3.GetObject(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

func (c *client) List(ctx context.Context, prefix string, fn func([]driver.ObjectInfo)) error {
	in := &awss3.ListObjectsV2Input{Bucket: &c.bucket, Prefix: &prefix}
	if c.pageSize > 0 {
		in.MaxKeys = aws.Int32(c.pageSize)
	}
	p := awss3.NewListObjectsV2Paginator(c.s3, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		out := make([]driver.ObjectInfo, len(page.Contents))
		for i, o := range page.Contents {
			out[i] = driver.ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}
		}
		fn(out)
	}
	return nil
}

func (c *client) Delete(ctx context.Context, key string) error {
	_, err := c.s3.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &c.bucket, Key: &key})
	return err
}

func (c *client) CreateUpload(ctx context.Context, key string) (string, error) {
	out, err := c.s3.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &c.bucket, Key: &key})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.UploadId), nil
}

func (c *client) UploadPart(ctx context.Context, key, id string, n int, data []byte, contentMD5 string) (string, error) {
	out, err := c.s3.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket:        &c.bucket,
		Key:           &key,
		UploadId:      &id,
		PartNumber:    aws.Int32(int32(n)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    &contentMD5,
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func (c *client) CompleteUpload(ctx context.Context, key, id string, parts []s3like.Part) error {
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.N)), ETag: aws.String(p.ETag)}
	}
	_, err := c.s3.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          &c.bucket,
		Key:             &key,
		UploadId:        &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	return err
}

func (c *client) AbortUpload(ctx context.Context, key, id string) error {
	_, err := c.s3.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &c.bucket, Key: &key, UploadId: &id})
	return err
}

func (c *client) ListUploads(ctx context.Context, prefix string) ([]driver.PendingUpload, error) {
	var out []driver.PendingUpload
	p := awss3.NewListMultipartUploadsPaginator(c.s3, &awss3.ListMultipartUploadsInput{Bucket: &c.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range page.Uploads {
			out = append(out, driver.PendingUpload{Key: aws.ToString(u.Key), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
	}
	return out, nil
}

func (c *client) PutEmpty(ctx context.Context, key string) error {
	_, err := c.s3.PutObject(ctx, &awss3.PutObjectInput{Bucket: &c.bucket, Key: &key, Body: bytes.NewReader(nil), ContentLength: aws.Int64(0)})
	return err
}
