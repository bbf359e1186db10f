//go:build !linux

package main

import "os/exec"

// dieWithParent is only available on Linux; elsewhere the API stops the
// child on a clean shutdown only.
func dieWithParent(*exec.Cmd) {}
