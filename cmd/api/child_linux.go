package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel send SIGTERM to the child worker when the
// API process dies, even by SIGKILL, so that no orphan keeps running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
