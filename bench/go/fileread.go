// Go twin of bench/fileread.c: 8 goroutines each (*os.File).ReadAt a whole page-cached file in 64 KiB chunks; total MiB/s.
// Built with benchlib.go.

//go:build ignore

package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"
)

const (
	readers = 8
	chunk   = 64 * 1024
)

// readAll reads the whole file into buf, chunk by chunk.
func readAll(f *os.File, size int64, buf []byte) {
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf, off)
		off += int64(n)
		if err == io.EOF && off >= size {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
	}
}

// runRound returns MiB/s over all readers.
func runRound(f *os.File, size int64, bufs [][]byte) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(readers)
	for i := 0; i < readers; i++ {
		go func(buf []byte) {
			defer wg.Done()
			readAll(f, size, buf)
		}(bufs[i])
	}
	wg.Wait()
	return float64(readers) * float64(size) / (1024 * 1024) / time.Since(start).Seconds()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-bench-fileread FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	if st.Size() <= 0 {
		log.Fatalf("%s: empty file", os.Args[1])
	}
	bufs := make([][]byte, readers)
	for i := range bufs {
		bufs[i] = make([]byte, chunk)
	}

	mibps := runRounds(func() float64 { return runRound(f, st.Size(), bufs) })
	metric("fileread_mib_per_sec", mibps, "MiB/s")
}
