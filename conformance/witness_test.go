package conformance_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"google.golang.org/api/option"

	"github.com/dbarchive/dbarchive/conformance"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
)

// The second client of the conformance suite is gocloud.dev/blob, each
// store through its own gocloud driver, configured for the emulator as a
// user would configure it (endpoint, path style, the emulator's
// credentials). It is a test-only dependency: the binaries never link it.

// blobWitness adapts a *blob.Bucket to conformance.Witness.
type blobWitness struct{ b *blob.Bucket }

func witness(t *testing.T, b *blob.Bucket, err error) conformance.Witness {
	t.Helper()
	if err != nil {
		t.Fatalf("open the second client: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return blobWitness{b}
}

func (w blobWitness) ReadAll(ctx context.Context, key string) ([]byte, error) {
	return w.b.ReadAll(ctx, key)
}

func (w blobWitness) Size(ctx context.Context, key string) (int64, error) {
	a, err := w.b.Attributes(ctx, key)
	if err != nil {
		return 0, err
	}
	return a.Size, nil
}

func (w blobWitness) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	it := w.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, obj.Key)
	}
}

// s3Witness opens the bucket of an s3 (or ibmcos HMAC) config with s3blob;
// idKey and secretKey name the config's Secret keys.
func s3Witness(idKey, secretKey string) func(t *testing.T, cfg drivers.Config) conformance.Witness {
	return func(t *testing.T, cfg drivers.Config) conformance.Witness {
		client := awss3.New(awss3.Options{
			Region:       cfg.Region,
			BaseEndpoint: aws.String(cfg.Endpoint),
			UsePathStyle: cfg.PathStyle,
			Credentials: credentials.NewStaticCredentialsProvider(
				cfg.Secrets.Get(idKey).Reveal(), cfg.Secrets.Get(secretKey).Reveal(), ""),
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
		b, err := s3blob.OpenBucket(context.Background(), client, cfg.Bucket, nil)
		return witness(t, b, err)
	}
}

// gcsWitness opens the bucket with gcsblob on a storage client pointed at
// the emulator without credentials, as fake-gcs-server's README does.
func gcsWitness(t *testing.T, cfg drivers.Config) conformance.Witness {
	ctx := context.Background()
	c, err := storage.NewClient(ctx, option.WithEndpoint(cfg.Endpoint), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	b, err := gcsblob.OpenBucket(ctx, nil, cfg.Bucket, &gcsblob.Options{Client: c})
	return witness(t, b, err)
}

// azureWitness opens the container with azureblob and the well-known
// Azurite account key.
func azureWitness(t *testing.T, cfg drivers.Config) conformance.Witness {
	cred, err := container.NewSharedKeyCredential(emulators.AzuriteAccount, emulators.AzuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	client, err := container.NewClientWithSharedKeyCredential(cfg.Endpoint+"/"+cfg.Bucket, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := azureblob.OpenBucket(context.Background(), client, nil)
	return witness(t, b, err)
}

// fsWitness opens the repo directory with fileblob. Our fs driver writes
// plain files and no attribute sidecars; fileblob reads such files with
// default attributes, so it can witness them.
func fsWitness(t *testing.T, cfg drivers.Config) conformance.Witness {
	b, err := fileblob.OpenBucket(cfg.Path, nil)
	return witness(t, b, err)
}
