// Go twin of bench/park.c: 1,000,000 goroutines parked at once on one unbuffered channel; creation ns and RSS KiB per goroutine.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

var n = 1000000

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
	n = sizeArg(n, "usage: go-bench-park [N]")
	base := rssKiB()
	m := runRoundsN(func() []float64 {
		ns, kib := runRound(base)
		return []float64{ns, kib}
	})
	metric("park_create_ns_per_goroutine", m[0], "ns")
	metric("park_rss_kib_per_goroutine", m[1], "KiB")
}
