//go:build linux || darwin

package disk

import (
	"github.com/kokorotts/kokoro-tts/storage"

	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// contentTypeAttr is the freedesktop.org "Common Extended Attributes" name
// for a file's media type, so other tools can read it too.
const contentTypeAttr = "user.mime_type"

// setContentType records ct on the open file. Because it is set on the
// temporary file before the rename, the type and the bytes become visible
// together. It returns errNoXattr when the file system has no user
// extended attributes.
func setContentType(f *os.File, ct string) error {
	err := unix.Fsetxattr(int(f.Fd()), contentTypeAttr, []byte(ct), 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return errNoXattr
	}
	return err
}

// contentType reads the type recorded on the open file; ok is false when
// there is none (or it cannot be read: the bytes are still served, typed by
// extension).
func contentType(f *os.File) (ct string, ok bool) {
	buf := make([]byte, storage.MaxContentTypeLen+1)
	n, err := unix.Fgetxattr(int(f.Fd()), contentTypeAttr, buf)
	if err != nil || n <= 0 || n > storage.MaxContentTypeLen {
		return "", false
	}
	return string(buf[:n]), true
}
