// Go twin of bench/pingpong.c: two goroutines bounce an int over unbuffered channels 1,000,000 times; ns per round trip.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"fmt"
	"sync"
	"time"
)

var n = 1000000 // round trips

// runRound returns ns per round trip (main goroutine sends ping, waits for pong).
func runRound() float64 {
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			v := <-ping
			pong <- v + 1
		}
	}()

	v := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	elapsed := time.Since(start)

	if v != n {
		panic(fmt.Sprintf("pingpong: got %d, want %d", v, n))
	}
	wg.Wait()
	return float64(elapsed.Nanoseconds()) / float64(n)
}

func main() {
	n = sizeArg(n, "usage: go-bench-pingpong [ROUND_TRIPS]")
	metric("pingpong_ns_per_roundtrip", runRounds(runRound), "ns")
}
