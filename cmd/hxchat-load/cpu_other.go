//go:build !unix

package main

import "time"

// cpuTime is unknown (-1) where getrusage is not available.
func cpuTime() time.Duration { return -1 }
