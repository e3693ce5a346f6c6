//go:build unix

package main

import (
	"runtime"
	"syscall"
	"testing"
)

// -max-conns 0 is derived from the soft limit, which Go raised to the hard
// one (less one) at start, on Linux as far as it goes.
func TestOpenFileLimitRaised(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	soft, ok := openFileLimit()
	if !ok || soft != uint64(lim.Cur) {
		t.Fatalf("openFileLimit = %d, %v; want the soft limit %d", soft, ok, lim.Cur)
	}
	if runtime.GOOS == "linux" && uint64(lim.Cur)+1 < uint64(lim.Max) {
		t.Errorf("soft limit %d, hard %d: Go did not raise it", lim.Cur, lim.Max)
	}
}
