// Go twin of bench/yield.c: 4 goroutines each calling runtime.Gosched 1,000,000 times; ns per yield.

//go:build ignore

package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	rounds  = 5 // timed rounds, after one untimed warm-up round
	workers = 4
)

var n = 1000000 // yields per goroutine

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

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
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-bench-yield [YIELDS_PER_GOROUTINE]")
			os.Exit(2)
		}
		n = v
	}
	runRound()
	v := make([]float64, rounds)
	for r := range v {
		v[r] = runRound()
	}
	fmt.Printf("METRIC yield_ns_per_yield %.2f ns\n", median(v))
}
