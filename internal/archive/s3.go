package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Config says where an S3 store keeps its objects and how to reach it.
// Its String and LogValue methods leave SecretKey out.
type S3Config struct {
	// Endpoint is the S3 server as host or host:port, without a scheme,
	// such as "s3.eu-west-1.amazonaws.com" or "minio.internal:9000".
	// Required.
	Endpoint string

	// Bucket is the bucket that holds the objects. It must exist. Required.
	Bucket string

	// Prefix is put before every object name to make its key, so that with
	// Prefix "attest/" the object "a/b.seg" has the key "attest/a/b.seg".
	// The default is no prefix.
	Prefix string

	// Region is the bucket's region. When empty the client asks the server.
	Region string

	// AccessKey and SecretKey are the static credentials. Both are
	// required. SecretKey never appears in logs, messages or errors.
	AccessKey string
	SecretKey string

	// Insecure talks plain HTTP instead of HTTPS, for tests and local
	// MinIO. The default is HTTPS.
	Insecure bool

	// ObjectLock sets an Object Lock retention in COMPLIANCE mode until
	// PutOptions.RetainUntil on each Put that asks for one. The bucket must
	// have been created with Object Lock enabled.
	ObjectLock bool

	// Transport, when not nil, carries the HTTP requests, for example with
	// a custom CA. The default is minio-go's transport.
	Transport http.RoundTripper
}

// String describes the configuration without the secret key.
func (c S3Config) String() string {
	return fmt.Sprintf("archive.S3Config{Endpoint:%q Bucket:%q Prefix:%q Region:%q "+
		"AccessKey:%q SecretKey:%s Insecure:%t ObjectLock:%t CustomTransport:%t}",
		c.Endpoint, c.Bucket, c.Prefix, c.Region, c.AccessKey, redacted(c.SecretKey),
		c.Insecure, c.ObjectLock, c.Transport != nil)
}

// GoString is String, so that %#v leaves the secret key out too.
func (c S3Config) GoString() string { return c.String() }

// LogValue describes the configuration for slog without the secret key.
func (c S3Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.String("access_key", c.AccessKey),
		slog.String("secret_key", redacted(c.SecretKey)),
		slog.Bool("insecure", c.Insecure),
		slog.Bool("object_lock", c.ObjectLock),
		slog.Bool("custom_transport", c.Transport != nil),
	)
}

// redacted says whether a secret is set without showing it.
func redacted(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "redacted"
}

// validate returns an error naming the first field of c that is wrong.
func (c S3Config) validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("archive: s3: endpoint is required")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("archive: s3: endpoint %q must be host[:port] without a scheme "+
			"(set Insecure for plain HTTP)", c.Endpoint)
	case strings.Contains(c.Endpoint, "@"):
		return errors.New("archive: s3: the endpoint must be host[:port]; give credentials as the access and secret keys")
	case strings.ContainsAny(c.Endpoint, "/?#@ "):
		return fmt.Errorf("archive: s3: endpoint %q must be host[:port] without a path", c.Endpoint)
	case c.Bucket == "":
		return errors.New("archive: s3: bucket is required")
	case c.AccessKey == "":
		return errors.New("archive: s3: access key is required")
	case c.SecretKey == "":
		return errors.New("archive: s3: secret key is required")
	}
	if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
		return fmt.Errorf("archive: s3: bucket %q: %w", c.Bucket, err)
	}
	if c.Prefix != "" {
		if reason := nameProblem(strings.TrimSuffix(c.Prefix, "/")); reason != "" {
			return fmt.Errorf("archive: s3: prefix %q: %s", c.Prefix, reason)
		}
	}
	return nil
}

// S3 is a Store that keeps each object in an S3 bucket under the key
// Prefix + name, through minio-go. It works with AWS S3 and S3-compatible
// servers such as MinIO.
//
// Objects are written with a single PUT, which S3 applies atomically, and are
// durable once S3 acknowledges it. Under Object Lock the bucket is versioned:
// a Put of an existing name adds a new version, and Delete adds a delete
// marker, after which the object reads as missing while its locked versions
// remain until their retention dates.
type S3 struct {
	core       minio.Core
	bucket     string
	prefix     string
	objectLock bool
	endpoint   string // URL of the endpoint, such as "https://host:port"
	desc       string // what String returns
}

var _ Store = (*S3)(nil)

// NewS3 validates cfg, connects to the endpoint and checks that the bucket
// exists and that the credentials are accepted.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    !cfg.Insecure,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("archive: s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	s := &S3{
		core:       minio.Core{Client: client},
		bucket:     cfg.Bucket,
		prefix:     cfg.Prefix,
		objectLock: cfg.ObjectLock,
		endpoint:   client.EndpointURL().String(),
	}
	s.desc = describe(cfg.Bucket, cfg.Prefix, s.endpoint)
	if err := s.checkBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// describe returns the String of an S3 store.
func describe(bucket, prefix, endpoint string) string {
	loc := "s3://" + bucket
	if prefix != "" {
		loc += "/" + prefix
	}
	return loc + " at " + endpoint
}

// checkBucket returns an error unless the bucket exists and the credentials
// are accepted.
func (s *S3) checkBucket(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil && refused(err) {
		return fmt.Errorf("archive: s3: access to bucket %q at %s refused; check the "+
			"access key, secret key and bucket policy: %w", s.bucket, s.endpoint, err)
	}
	if err != nil {
		return fmt.Errorf("archive: s3: check bucket %q at %s: %w", s.bucket, s.endpoint, err)
	}
	if !ok {
		return fmt.Errorf("archive: s3: bucket %q does not exist at %s", s.bucket, s.endpoint)
	}
	return nil
}

// refused reports whether err says that the server did not accept the
// credentials or denied the request.
func refused(err error) bool {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return true
	}
	return resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
}

// String returns the bucket, prefix and endpoint, such as
// "s3://bucket/prefix/ at https://host".
func (s *S3) String() string { return s.desc }

// Put uploads data with a single PUT. It sends the SHA-256 of data both to
// sign the payload and as the object's x-amz-checksum-sha256, so the server
// refuses a corrupted upload and keeps the checksum. With ObjectLock it also
// sets COMPLIANCE retention until opts.RetainUntil and sends Content-MD5,
// which S3 servers may demand for uploads under Object Lock.
func (s *S3) Put(ctx context.Context, name string, data []byte, opts PutOptions) error {
	if err := checkName(name); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	po := minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true,
		// Sign the SHA-256 computed here rather than stream chunk
		// signatures, which minio-go sends without a Content-Length for
		// an empty object over HTTP.
		DisableContentSha256: true,
		UserMetadata: map[string]string{
			"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(sum[:]),
		},
	}
	var md5sum string
	if s.objectLock && !opts.RetainUntil.IsZero() {
		po.Mode = minio.Compliance
		po.RetainUntilDate = opts.RetainUntil.UTC()
		m := md5.Sum(data)
		md5sum = base64.StdEncoding.EncodeToString(m[:])
	}
	_, err := s.core.PutObject(ctx, s.bucket, s.prefix+name, bytes.NewReader(data),
		int64(len(data)), md5sum, hex.EncodeToString(sum[:]), po)
	if err != nil {
		return s.fail("put", name, err)
	}
	return nil
}

// ReadAt reads with one ranged GET of exactly the bytes asked for, and checks
// that the server answered with the range that starts at off.
func (s *S3) ReadAt(ctx context.Context, name string, p []byte, off int64) (int, error) {
	if err := checkRead(ctx, name, off); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		_, err := s.Size(ctx, name)
		return 0, err
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return 0, s.fail("read", name, err)
	}
	body, info, h, err := s.core.GetObject(ctx, s.bucket, s.prefix+name, opts)
	if minio.ToErrorResponse(err).Code == "InvalidRange" {
		return 0, io.EOF // off is at or past the end
	}
	if err != nil {
		return 0, s.fail("read", name, err)
	}
	defer body.Close()

	// The server sends the part of the range that lies inside the object. A
	// server may ignore the range and send the whole object, which is only
	// what was asked for when off is 0 and the object fits in p.
	cr := h.Get("Content-Range")
	fromOff := strings.HasPrefix(cr, fmt.Sprintf("bytes %d-", off)) || cr == "" && off == 0
	if !fromOff || info.Size > int64(len(p)) {
		return 0, fmt.Errorf("archive: read %q in %s: asked for %d bytes at %d, "+
			"server sent %d bytes with Content-Range %q", name, s, len(p), off, info.Size, cr)
	}
	n, err := io.ReadFull(body, p[:info.Size])
	if err != nil {
		return n, s.fail("read", name, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size returns the size that StatObject reports.
func (s *S3) Size(ctx context.Context, name string) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	info, err := s.core.StatObject(ctx, s.bucket, s.prefix+name, minio.StatObjectOptions{})
	if err != nil {
		return 0, s.fail("size", name, err)
	}
	return info.Size, nil
}

// Delete removes the object with RemoveObject.
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := s.core.RemoveObject(ctx, s.bucket, s.prefix+name, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey" {
		return s.fail("delete", name, err)
	}
	return nil
}

// fail returns the error for op on the object name after err.
func (s *S3) fail(op, name string, err error) error {
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return notExist(name, s)
	}
	return fmt.Errorf("archive: %s %q in %s: %w", op, name, s, err)
}
