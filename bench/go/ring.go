// Go twin of bench/ring.c: 1000 goroutines in a ring of unbuffered channels pass a token 1,000,000 hops; ns per hop.

//go:build ignore

package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	rounds = 5 // timed rounds, after one untimed warm-up round
	ring   = 1000
)

var hops = 1000000

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

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
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-bench-ring [HOPS]")
			os.Exit(2)
		}
		hops = v
	}
	runRound()
	v := make([]float64, rounds)
	for r := range v {
		v[r] = runRound()
	}
	fmt.Printf("METRIC ring_ns_per_hop %.2f ns\n", median(v))
}
