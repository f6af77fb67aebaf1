// Go twin of bench/spawn.c: start 1,000,000 goroutines that each call wg.Done, wait for all; ns per goroutine.

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

var n = 1000000

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

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
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-bench-spawn [N]")
			os.Exit(2)
		}
		n = v
	}
	runRound()
	v := make([]float64, rounds)
	for r := range v {
		v[r] = runRound()
	}
	fmt.Printf("METRIC spawn_ns_per_goroutine %.2f ns\n", median(v))
}
