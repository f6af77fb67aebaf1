// Go twin of bench/park.c: 1,000,000 goroutines parked at once on one unbuffered channel; creation ns and RSS KiB per goroutine.

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

// rssKiB returns the resident set size in KiB, from /proc/self/statm.
func rssKiB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		panic(err)
	}
	return float64(resident*int64(os.Getpagesize())) / 1024
}

// runRound creates all parkers and waits until each has checked in (it then
// blocks on the channel). It returns the creation time per goroutine and the
// resident memory per goroutine with all of them alive, against baseKiB, the RSS
// before the first round (so memory the runtime caches from an earlier round
// still counts).
func runRound(baseKiB float64) (ns, kib float64) {
	ch := make(chan struct{})
	var parked, exited sync.WaitGroup
	exited.Add(n)

	start := time.Now()
	parked.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer exited.Done()
			parked.Done()
			<-ch
		}()
	}
	parked.Wait()
	elapsed := time.Since(start)

	ns = float64(elapsed.Nanoseconds()) / float64(n)
	kib = (rssKiB() - baseKiB) / float64(n)
	close(ch)
	exited.Wait()
	return ns, kib
}

func main() {
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go-bench-park [N]")
			os.Exit(2)
		}
		n = v
	}
	base := rssKiB()
	runRound(base)
	ns, kib := make([]float64, rounds), make([]float64, rounds)
	for r := 0; r < rounds; r++ {
		ns[r], kib[r] = runRound(base)
	}
	fmt.Printf("METRIC park_create_ns_per_goroutine %.2f ns\n", median(ns))
	fmt.Printf("METRIC park_rss_kib_per_goroutine %.2f KiB\n", median(kib))
}
