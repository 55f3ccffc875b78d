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
// The product uses IBM's SDK for COS (its IAM token handling is the
// supported one). The S3 protocol logic it shares with drivers/s3 (ETag
// bookkeeping, 416 handling, the delete rule, empty objects, the error-code
// table) lives once in drivers/internal/s3like; this package adapts the SDK's
// calls to s3like.Client and reads the SDK's own failure codes. It must not
// retry (the portable layer does, by class), log credentials or tokens, or
// let an SDK type cross the driver interface.
//
// Repo URL: ibmcos://bucket/prefix?endpoint=&region=&path_style=&auth_endpoint=,
// credentials in CLOUD_OBJECT_STORAGE_HMAC_ACCESS_KEY_ID and
// CLOUD_OBJECT_STORAGE_HMAC_SECRET_ACCESS_KEY, or CLOUD_OBJECT_STORAGE_API_KEY
// and CLOUD_OBJECT_STORAGE_SERVICE_INSTANCE_ID.
package ibmcos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/IBM/ibm-cos-sdk-go/aws"
	"github.com/IBM/ibm-cos-sdk-go/aws/awserr"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials/ibmiam"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials/ibmiam/token"
	"github.com/IBM/ibm-cos-sdk-go/aws/request"
	"github.com/IBM/ibm-cos-sdk-go/aws/session"
	cos3 "github.com/IBM/ibm-cos-sdk-go/service/s3"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
	"github.com/dbarchive/dbarchive/drivers/internal/s3like"
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

func init() {
	drivers.Register(drivers.Registration{
		Type:   Type,
		Scheme: "ibmcos",
		Params: []string{"endpoint", "region", "path_style", "auth_endpoint"},
		Secrets: []drivers.SecretKey{
			{Key: SecretHmacAccessKeyID, Env: "CLOUD_OBJECT_STORAGE_HMAC_ACCESS_KEY_ID"},
			{Key: SecretHmacSecretAccessKey, Env: "CLOUD_OBJECT_STORAGE_HMAC_SECRET_ACCESS_KEY"},
			{Key: SecretAPIKey, Env: "CLOUD_OBJECT_STORAGE_API_KEY"},
			{Key: SecretServiceInstanceID, Env: "CLOUD_OBJECT_STORAGE_SERVICE_INSTANCE_ID"},
		},
		Open: New,
	})
}

// client adapts IBM's SDK to s3like.Client.
type client struct {
	sdkErrors
	s3        *cos3.S3
	transport *http.Transport
	bucket    string
	pageSize  int64
}

// New validates cfg and opens the bucket. No request is sent (not even to the
// token endpoint) unless cfg.CreateBucket asks for the bucket to be created
// when missing.
func New(ctx context.Context, cfg drivers.Config) (driver.Bucket, error) {
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

	transport, err := cfg.NewTransport()
	if err != nil {
		return nil, err
	}
	httpClient := &http.Client{Transport: transport}

	awsCfg := &aws.Config{
		Endpoint:         aws.String(cfg.Endpoint),
		Region:           aws.String(region),
		S3ForcePathStyle: aws.Bool(cfg.PathStyle),
		HTTPClient:       httpClient,
		// One attempt per call, for the token exchange too: the portable
		// layer retries by class with its backoff and budget; SDK retries
		// underneath would multiply the attempts.
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
	c := &client{s3: cos3.New(sess), transport: transport, bucket: cfg.Bucket, pageSize: int64(min(cfg.ListPageSize, 1000))}
	slog.Debug("opened ibmcos repo", "repo", cfg.Name, "bucket", cfg.Bucket, "credentials", source)
	if cfg.CreateBucket {
		if err := c.createBucket(ctx, cfg.Name); err != nil {
			return nil, err
		}
	}
	return s3like.New(c), nil
}

// createBucket creates the bucket when HeadBucket says it is missing.
func (c *client) createBucket(ctx context.Context, repo string) error {
	_, err := c.s3.HeadBucketWithContext(ctx, &cos3.HeadBucketInput{Bucket: &c.bucket})
	if err == nil {
		return nil
	}
	if s3like.Code(c, err) != drivers.NotFound {
		return classify("head bucket", c.bucket, err)
	}
	_, err = c.s3.CreateBucketWithContext(ctx, &cos3.CreateBucketInput{Bucket: &c.bucket})
	var aerr awserr.Error
	if err != nil && !(errors.As(err, &aerr) && aerr.Code() == cos3.ErrCodeBucketAlreadyOwnedByYou) {
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

// sdkErrors reads the errors of IBM's fork of aws-sdk-go v1.
type sdkErrors struct{}

func (sdkErrors) ServiceCode(err error) (string, int) {
	var aerr awserr.Error
	if !errors.As(err, &aerr) {
		return "", 0
	}
	status := 0
	var reqErr awserr.RequestFailure
	if errors.As(err, &reqErr) {
		status = reqErr.StatusCode()
	}
	return aerr.Code(), status
}

// Fallback reads what aws-sdk-go v1 reports without a service answer. Its
// errors do not implement Unwrap: walk OrigErr to reach a cancelled context,
// a broken connection or IAM's refusal.
func (sdkErrors) Fallback(err error) drivers.Code {
	var aerr awserr.Error
	if !errors.As(err, &aerr) {
		return drivers.Unknown
	}
	if aerr.Code() == request.ErrCodeResponseTimeout {
		return drivers.Transient
	}
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
	return drivers.Unknown
}

func (c *client) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

func (c *client) Head(ctx context.Context, key string) (driver.ObjectInfo, error) {
	out, err := c.s3.HeadObjectWithContext(ctx, &cos3.HeadObjectInput{Bucket: &c.bucket, Key: &key})
	if err != nil {
		return driver.ObjectInfo{}, err
	}
	return driver.ObjectInfo{Key: key, Size: aws.Int64Value(out.ContentLength), ModTime: aws.TimeValue(out.LastModified)}, nil
}

func (c *client) Get(ctx context.Context, key, rng string) (io.ReadCloser, error) {
	in := &cos3.GetObjectInput{Bucket: &c.bucket, Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	out, err := c.s3.GetObjectWithContext(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

func (c *client) List(ctx context.Context, prefix string, fn func([]driver.ObjectInfo)) error {
	in := &cos3.ListObjectsV2Input{Bucket: &c.bucket, Prefix: &prefix}
	if c.pageSize > 0 {
		in.MaxKeys = aws.Int64(c.pageSize)
	}
	return c.s3.ListObjectsV2PagesWithContext(ctx, in, func(page *cos3.ListObjectsV2Output, _ bool) bool {
		out := make([]driver.ObjectInfo, len(page.Contents))
		for i, o := range page.Contents {
			out[i] = driver.ObjectInfo{Key: aws.StringValue(o.Key), Size: aws.Int64Value(o.Size), ModTime: aws.TimeValue(o.LastModified)}
		}
		fn(out)
		return true
	})
}

func (c *client) Delete(ctx context.Context, key string) error {
	_, err := c.s3.DeleteObjectWithContext(ctx, &cos3.DeleteObjectInput{Bucket: &c.bucket, Key: &key})
	return err
}

func (c *client) CreateUpload(ctx context.Context, key string) (string, error) {
	out, err := c.s3.CreateMultipartUploadWithContext(ctx, &cos3.CreateMultipartUploadInput{Bucket: &c.bucket, Key: &key})
	if err != nil {
		return "", err
	}
	return aws.StringValue(out.UploadId), nil
}

func (c *client) UploadPart(ctx context.Context, key, id string, n int, data []byte, contentMD5 string) (string, error) {
	out, err := c.s3.UploadPartWithContext(ctx, &cos3.UploadPartInput{
		Bucket:        &c.bucket,
		Key:           &key,
		UploadId:      &id,
		PartNumber:    aws.Int64(int64(n)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    &contentMD5,
	})
	if err != nil {
		return "", err
	}
	return aws.StringValue(out.ETag), nil
}

func (c *client) CompleteUpload(ctx context.Context, key, id string, parts []s3like.Part) error {
	completed := make([]*cos3.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = &cos3.CompletedPart{PartNumber: aws.Int64(int64(p.N)), ETag: aws.String(p.ETag)}
	}
	_, err := c.s3.CompleteMultipartUploadWithContext(ctx, &cos3.CompleteMultipartUploadInput{
		Bucket:          &c.bucket,
		Key:             &key,
		UploadId:        &id,
		MultipartUpload: &cos3.CompletedMultipartUpload{Parts: completed},
	})
	return err
}

func (c *client) AbortUpload(ctx context.Context, key, id string) error {
	_, err := c.s3.AbortMultipartUploadWithContext(ctx, &cos3.AbortMultipartUploadInput{Bucket: &c.bucket, Key: &key, UploadId: &id})
	return err
}

func (c *client) ListUploads(ctx context.Context, prefix string) ([]driver.PendingUpload, error) {
	var out []driver.PendingUpload
	err := c.s3.ListMultipartUploadsPagesWithContext(ctx, &cos3.ListMultipartUploadsInput{Bucket: &c.bucket, Prefix: &prefix},
		func(page *cos3.ListMultipartUploadsOutput, _ bool) bool {
			for _, u := range page.Uploads {
				out = append(out, driver.PendingUpload{Key: aws.StringValue(u.Key), ID: aws.StringValue(u.UploadId), Initiated: aws.TimeValue(u.Initiated)})
			}
			return true
		})
	return out, err
}

func (c *client) PutEmpty(ctx context.Context, key string) error {
	_, err := c.s3.PutObjectWithContext(ctx, &cos3.PutObjectInput{Bucket: &c.bucket, Key: &key, Body: bytes.NewReader(nil), ContentLength: aws.Int64(0)})
	return err
}
