// Package s3 is the S3 storage backend (MinIO, AWS S3 and compatibles), built
// on minio-go. Besides storage.Store it implements storage.Presigner.
//
// Writes are atomic by S3's semantics: an object appears only once its upload
// completes. A Put with an unknown size streams in 8 MiB parts (multipart
// upload; at most ~78 GiB); a canceled or failed multipart upload may leave
// invisible parts behind until the bucket's lifecycle rules (MinIO: after 24 h)
// clean them up. Reads of an open object are pinned to the version opened
// (If-Match on its ETag): after an overwrite they fail instead of mixing
// versions.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/kokorotts/kokoro-tts/storage"
)

// partSize is the multipart part size for uploads of unknown size. minio-go
// would otherwise size parts for a 5 TiB object and buffer ~537 MiB per Put.
const partSize = 8 << 20

// maxPresignExpiry is S3's limit for presigned URLs (SigV4).
const maxPresignExpiry = 7 * 24 * time.Hour

// Config configures a Store.
type Config struct {
	// Endpoint is host[:port] of the S3 API, without a scheme, e.g.
	// "minio:9000" or "s3.eu-west-1.amazonaws.com".
	Endpoint string
	// Bucket holds all objects.
	Bucket string
	// AccessKey and SecretKey are static credentials; both empty means
	// anonymous requests.
	AccessKey string
	SecretKey string
	// UseSSL selects https for Endpoint (and for PublicEndpoint when it has
	// no scheme).
	UseSSL bool
	// Region is the bucket's region. Empty means: ask the server (once per
	// bucket) when needed; set it to avoid that request.
	Region string
	// CreateBucket makes New create the bucket if it does not exist.
	CreateBucket bool
	// PublicEndpoint, if set, is the [scheme://]host[:port] that presigned
	// URLs point at, for when clients reach the store under another name than
	// the service does (e.g. "https://files.example.com" in front of
	// "minio:9000"). URLs are signed for that host, so a proxy in between must
	// pass the Host header through unchanged. No path is allowed.
	PublicEndpoint string
}

// Store is an S3 bucket. It is safe for concurrent use.
type Store struct {
	client  *minio.Client
	presign *minio.Client // signs for PublicEndpoint; never dials
	bucket  string
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Presigner = (*Store)(nil)
)

// New returns a Store for cfg.Bucket. It contacts the server only when
// CreateBucket is set (to create the bucket if missing) or when
// PublicEndpoint is set without a Region (to look the region up, which the
// presigning client needs to sign offline). Use Ping to check the store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("s3: Endpoint not set")
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("s3: Endpoint %q must be host[:port] without a scheme (use UseSSL for https)", cfg.Endpoint)
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3: Bucket %q: %w", cfg.Bucket, err)
	}
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	client, err := minio.New(cfg.Endpoint, &minio.Options{Creds: creds, Secure: cfg.UseSSL, Region: cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	s := &Store{client: client, presign: client, bucket: cfg.Bucket}

	if cfg.CreateBucket {
		if err := s.ensureBucket(ctx, cfg.Region); err != nil {
			return nil, err
		}
	}
	if cfg.PublicEndpoint != "" {
		host, secure, err := parsePublicEndpoint(cfg.PublicEndpoint, cfg.UseSSL)
		if err != nil {
			return nil, err
		}
		region := cfg.Region
		if region == "" {
			if region, err = client.GetBucketLocation(ctx, cfg.Bucket); err != nil {
				return nil, fmt.Errorf("s3: looking up the region of bucket %q (set Region to skip): %w", cfg.Bucket, err)
			}
		}
		// With the region known, minio-go signs without any request, so
		// this client never needs to reach the public host.
		s.presign, err = minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: region})
		if err != nil {
			return nil, fmt.Errorf("s3: PublicEndpoint %q: %w", cfg.PublicEndpoint, err)
		}
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3: checking bucket %q: %w", s.bucket, err)
	}
	if exists {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	// Another process (API and worker start together) may have won the race.
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return fmt.Errorf("s3: creating bucket %q: %w", s.bucket, err)
	}
	return nil
}

// parsePublicEndpoint splits "[scheme://]host[:port]" into minio-go's host
// and secure flag.
func parsePublicEndpoint(s string, useSSL bool) (host string, secure bool, err error) {
	if !strings.Contains(s, "://") {
		return s, useSSL, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("s3: PublicEndpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("s3: PublicEndpoint %q: scheme must be http or https", s)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false, fmt.Errorf("s3: PublicEndpoint %q must be scheme://host[:port] with nothing after it", s)
	}
	return u.Host, u.Scheme == "https", nil
}

// Name returns "s3".
func (s *Store) Name() string { return "s3" }

// Put uploads r to key. With size >= 0 the body must have exactly size
// bytes; a longer body fails before its last byte is sent, so nothing is
// stored. An empty contentType is stored as application/octet-stream.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: put: %w", err)
	}
	ct, err := storage.NormalizeContentType(contentType)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: put %q: %w", key, err)
	}
	if size < -1 {
		return storage.ObjectInfo{}, fmt.Errorf("s3: put %q: invalid size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: put %q: %w", key, err)
	}
	opts := minio.PutObjectOptions{ContentType: ct}
	if size >= 0 {
		r = &exactReader{r: r, left: size}
	} else {
		opts.PartSize = partSize
	}
	up, err := s.client.PutObject(ctx, s.bucket, key, r, size, opts)
	if err != nil {
		return storage.ObjectInfo{}, s.fail(ctx, "put", key, err)
	}
	s.removeIncompleteUploads(ctx, key)
	mod := up.LastModified
	if mod.IsZero() { // a single PUT's response carries no Last-Modified
		mod = time.Now()
	}
	return storage.ObjectInfo{Key: key, Size: up.Size, ContentType: ct, ModTime: mod}, nil
}

// Open opens key for reading. It makes one HEAD request; data is fetched on
// the first Read, and again after each Seek. The object's reads are bound to
// ctx: once ctx is done they fail, so pass a context that lives as long as
// the reading (e.g. the HTTP request's).
func (s *Store) Open(ctx context.Context, key string) (storage.Object, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("s3: open: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3: open %q: %w", key, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail(ctx, "open", key, err)
	}
	oi, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, s.fail(ctx, "open", key, err)
	}
	return &object{obj: obj, info: objectInfo(key, oi)}, nil
}

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: stat: %w", err)
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, s.fail(ctx, "stat", key, err)
	}
	return objectInfo(key, oi), nil
}

// Delete removes key, and any multipart upload of it left unfinished; a
// missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return s.fail(ctx, "delete", key, err)
	}
	s.removeIncompleteUploads(ctx, key)
	return nil
}

// removeIncompleteUploads aborts the unfinished multipart uploads of key: a
// writer that died mid-upload (a worker killed, a host lost) leaves its
// parts in the bucket, invisible to listings of objects but stored and
// billed, until the bucket's own expiry (MinIO: 24 h; S3: only with a
// lifecycle rule). The next Put or Delete of the key removes them. Best
// effort: the object itself is already written or removed, and the parts
// are garbage either way.
func (s *Store) removeIncompleteUploads(ctx context.Context, key string) {
	_ = s.client.RemoveIncompleteUpload(ctx, s.bucket, key)
}

// Ping checks that the bucket exists and the credentials can see it.
func (s *Store) Ping(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3: ping bucket %q: %w", s.bucket, err)
	}
	if !exists {
		return fmt.Errorf("s3: ping: bucket %q does not exist", s.bucket)
	}
	return nil
}

// PresignGet returns a URL that GETs key without credentials until expiry
// (1 s to 7 days) has passed, on PublicEndpoint if one is configured. It
// does not check that key exists.
func (s *Store) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", fmt.Errorf("s3: presign: %w", err)
	}
	if expiry < time.Second || expiry > maxPresignExpiry {
		return "", fmt.Errorf("s3: presign %q: expiry %v outside [1s, %v]", key, expiry, maxPresignExpiry)
	}
	u, err := s.presign.PresignedGetObject(ctx, s.bucket, key, expiry, nil)
	if err != nil {
		return "", s.fail(ctx, "presign", key, err)
	}
	return u.String(), nil
}

// fail wraps a minio-go error: NoSuchKey becomes storage.ErrNotFound, and a
// done ctx is kept in the chain even where minio-go reports something else.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return fmt.Errorf("s3: %s %q: %w", op, key, storage.ErrNotFound)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("s3: %s %q: %w: %w", op, key, cerr, err)
	}
	return fmt.Errorf("s3: %s %q: %w", op, key, err)
}

func objectInfo(key string, oi minio.ObjectInfo) storage.ObjectInfo {
	ct := oi.ContentType
	if ct == "" {
		ct = storage.DefaultContentType
	}
	return storage.ObjectInfo{Key: key, Size: oi.Size, ContentType: ct, ModTime: oi.LastModified}
}

// object is an open *minio.Object with the info read at Open.
type object struct {
	obj  *minio.Object
	info storage.ObjectInfo
}

func (o *object) Read(p []byte) (int, error)                   { return o.obj.Read(p) }
func (o *object) ReadAt(p []byte, off int64) (int, error)      { return o.obj.ReadAt(p, off) }
func (o *object) Seek(offset int64, whence int) (int64, error) { return o.obj.Seek(offset, whence) }
func (o *object) Close() error                                 { return o.obj.Close() }
func (o *object) Info() storage.ObjectInfo                     { return o.info }

// errSizeMismatch reports a body whose length differs from the declared size.
var errSizeMismatch = errors.New("body length differs from the declared size")

// exactReader passes on exactly left bytes of r. It withholds the read that
// would complete the body until it has checked that r has nothing more, so
// an over-long body fails the upload before the server has all the bytes it
// was promised (and so before it could store a truncated object).
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, e.checkEOF()
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		if err == nil || err == io.EOF {
			if cerr := e.checkEOF(); cerr != io.EOF {
				return 0, cerr
			}
		}
		return n, err
	case err == io.EOF:
		return n, fmt.Errorf("%w: %d bytes short: %w", errSizeMismatch, e.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// checkEOF returns io.EOF if r is exhausted.
func (e *exactReader) checkEOF() error {
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: body is longer", errSizeMismatch)
		}
		if err != nil {
			return err
		}
	}
}
