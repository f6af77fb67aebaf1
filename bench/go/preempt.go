// Go twin of bench/preempt.c: with GOMAXPROCS(1), how late a 1 ms time.Sleep wakes while another goroutine spins in a pure loop; p50/p99 µs.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"time"
)

const (
	warmup  = 20 // untimed sleeps first
	samples = 200
	sleep   = time.Millisecond
)

var (
	spinnerStarted int32
	spinCounter    uint64
)

// percentile returns the nearest-rank percentile p of sorted v.
func percentile(v []float64, p int) float64 {
	rank := (p*len(v) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return v[rank-1]
}

// spin never calls anything in its loop: only asynchronous preemption can take the P back.
func spin() {
	atomic.StoreInt32(&spinnerStarted, 1)
	for {
		spinCounter++
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	go spin()
	// with one P, once the spinner runs we are back only after it is preempted
	for atomic.LoadInt32(&spinnerStarted) == 0 {
		runtime.Gosched()
	}

	late := make([]float64, 0, samples)
	for i := 0; i < warmup+samples; i++ {
		start := time.Now()
		time.Sleep(sleep)
		l := time.Since(start) - sleep
		if i >= warmup {
			late = append(late, float64(l.Nanoseconds())/1e3)
		}
	}

	sort.Float64s(late)
	metric("preempt_lateness_p50_us", percentile(late, 50), "us")
	metric("preempt_lateness_p99_us", percentile(late, 99), "us")
	os.Exit(0) // the spinner never returns
}
