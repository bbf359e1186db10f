package disk

import (
	"mime"
	"path"
	"strings"

	"github.com/kokorotts/kokoro-tts/storage"
)

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
	return storage.DefaultContentType
}
