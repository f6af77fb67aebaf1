// Go twin of bench/spawn.c: start 1,000,000 goroutines that each call wg.Done, wait for all; ns per goroutine.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"sync"
	"time"
)

var n = 1000000

// runRound returns ns per goroutine (create + run + finish).
func runRound() float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func main() {
	n = sizeArg(n, "usage: go-bench-spawn [N]")
	metric("spawn_ns_per_goroutine", runRounds(runRound), "ns")
}
