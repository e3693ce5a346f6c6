//go:build unix

package main

import "syscall"

// openFileLimit returns the soft RLIMIT_NOFILE, which Go raised to (about)
// the hard limit at start (syscall's init; go.dev/issue/46279).
func openFileLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}
