//go:build !(linux || darwin)

package disk

import "os"

// Extended attributes are only used on Linux and macOS; elsewhere every type
// comes from the key's extension.

func setContentType(*os.File, string) error { return errNoXattr }

func contentType(*os.File) (string, bool) { return "", false }
