// Helpers every Go twin shares: size argument, warm-up + timed rounds + median, METRIC lines.
//
// Built together with one twin, `go build -o go-bench-W benchlib.go W.go`: Go
// ignores build constraints in .go files named on the command line, so this file
// and the twins carry `//go:build ignore` and the directory never forms a package
// of its own (nine main functions).

//go:build ignore

package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
)

const rounds = 5 // timed rounds, after one untimed warm-up round

// median sorts v and returns its median.
func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// metric prints one "METRIC <name> <value> <unit>" line.
func metric(name string, value float64, unit string) {
	fmt.Printf("METRIC %s %.2f %s\n", name, value, unit)
}

// sizeArg returns the optional size argument os.Args[1], else def; it exits
// with status 2 and usage on stderr unless that is a positive integer.
func sizeArg(def int, usage string) int {
	if len(os.Args) < 2 {
		return def
	}
	v, err := strconv.Atoi(os.Args[1])
	if err != nil || v <= 0 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	return v
}

// runRoundsN runs round once untimed (the warm-up, which also tells how many
// values a round returns, one per metric), then rounds times, and returns the
// median of each value over the timed rounds.
func runRoundsN(round func() []float64) []float64 {
	v := make([][]float64, len(round()))
	for i := range v {
		v[i] = make([]float64, rounds)
	}
	for r := 0; r < rounds; r++ {
		for i, x := range round() {
			v[i][r] = x
		}
	}
	m := make([]float64, len(v))
	for i := range v {
		m[i] = median(v[i])
	}
	return m
}

// runRounds is runRoundsN for a round that returns one value.
func runRounds(round func() float64) float64 {
	return runRoundsN(func() []float64 { return []float64{round()} })[0]
}
