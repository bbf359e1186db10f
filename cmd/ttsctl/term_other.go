//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package main

import "os"

// isTerminal reports false where ttsctl cannot ask the system: the output
// is then plain lines, which work everywhere.
func isTerminal(*os.File) bool { return false }
