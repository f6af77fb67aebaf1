// Go twin of bench/sleep.c: 100,000 goroutines each time.Sleep 10 ms, wait for all; total ms.

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

var n = 100000

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

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
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-bench-sleep [N]")
			os.Exit(2)
		}
		n = v
	}
	runRound()
	v := make([]float64, rounds)
	for r := range v {
		v[r] = runRound()
	}
	fmt.Printf("METRIC sleep_total_ms %.2f ms\n", median(v))
}
