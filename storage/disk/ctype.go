package disk

import (
	"fmt"
	"mime"
	"path"
	"strings"
)

// defaultContentType is stored when Put is given no content type; S3 does the same.
const defaultContentType = "application/octet-stream"

// maxContentTypeLen bounds what is stored in the extended attribute.
const maxContentTypeLen = 255

// normalizeContentType applies the default and rejects values that are not a
// media type (they end up in an HTTP header, so a newline must never pass).
func normalizeContentType(ct string) (string, error) {
	if ct == "" {
		return defaultContentType, nil
	}
	if len(ct) > maxContentTypeLen {
		return "", fmt.Errorf("content type longer than %d bytes", maxContentTypeLen)
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return "", fmt.Errorf("content type %q: %w", ct, err)
	}
	return ct, nil
}

// extensionTypes covers the formats this service writes, so that the fallback
// does not depend on the host's /etc/mime.types.
var extensionTypes = map[string]string{
	".mp3":  "audio/mpeg",
	".wav":  "audio/wav",
	".ogg":  "audio/ogg",
	".opus": "audio/ogg",
	".flac": "audio/flac",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// typeByExtension is the content type of a file that carries no stored type
// (copied without its extended attributes, or put there by hand).
func typeByExtension(key string) string {
	ext := strings.ToLower(path.Ext(key))
	if t, ok := extensionTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return defaultContentType
}
