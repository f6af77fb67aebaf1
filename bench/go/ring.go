// Go twin of bench/ring.c: 1000 goroutines in a ring of unbuffered channels pass a token 1,000,000 hops; ns per hop.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"sync"
	"time"
)

const ring = 1000

var hops = 1000000

// runRound returns ns per hop; building and tearing down the ring is not timed.
// The token is the number of hops still to go; member i receives on ch[i] and
// sends on ch[(i+1)%ring]; the one that receives 0 reports on done.
func runRound() float64 {
	var ch [ring]chan int
	for i := range ch {
		ch[i] = make(chan int)
	}
	done := make(chan int)
	var wg sync.WaitGroup
	wg.Add(ring)
	for i := 0; i < ring; i++ {
		go func(in, out chan int) {
			defer wg.Done()
			for v := range in {
				if v == 0 {
					done <- v
				} else {
					out <- v - 1
				}
			}
		}(ch[i], ch[(i+1)%ring])
	}

	start := time.Now()
	ch[0] <- hops
	<-done
	elapsed := time.Since(start)

	for _, c := range ch {
		close(c)
	}
	wg.Wait()
	return float64(elapsed.Nanoseconds()) / float64(hops)
}

func main() {
	hops = sizeArg(hops, "usage: go-bench-ring [HOPS]")
	metric("ring_ns_per_hop", runRounds(runRound), "ns")
}
