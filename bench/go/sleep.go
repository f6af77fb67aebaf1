// Go twin of bench/sleep.c: 100,000 goroutines each time.Sleep 10 ms, wait for all; total ms.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"sync"
	"time"
)

var n = 100000

// runRound returns ms from the first spawn until the last sleeper is done.
func runRound() float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer wg.Done()
			time.Sleep(10 * time.Millisecond)
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / 1e6
}

func main() {
	n = sizeArg(n, "usage: go-bench-sleep [N]")
	metric("sleep_total_ms", runRounds(runRound), "ms")
}
