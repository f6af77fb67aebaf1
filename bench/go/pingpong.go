// Go twin of bench/pingpong.c: two goroutines bounce an int over unbuffered channels 1,000,000 times; ns per round trip.

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

const rounds = 5 // timed rounds, after one untimed warm-up round

var n = 1000000 // round trips

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

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
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-bench-pingpong [ROUND_TRIPS]")
			os.Exit(2)
		}
		n = v
	}
	runRound()
	v := make([]float64, rounds)
	for r := range v {
		v[r] = runRound()
	}
	fmt.Printf("METRIC pingpong_ns_per_roundtrip %.2f ns\n", median(v))
}
