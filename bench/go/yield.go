// Go twin of bench/yield.c: 4 goroutines each calling runtime.Gosched 1,000,000 times; ns per yield.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"runtime"
	"sync"
	"time"
)

const workers = 4

var n = 1000000 // yields per goroutine

// runRound returns ns per yield (wall time / total yields).
func runRound() float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(workers)
	for i := 0; i < workers; i++ {
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(workers*n)
}

func main() {
	n = sizeArg(n, "usage: go-bench-yield [YIELDS_PER_GOROUTINE]")
	metric("yield_ns_per_yield", runRounds(runRound), "ns")
}
