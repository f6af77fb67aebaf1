// Go twin of bench/httpd.c: keep-alive HTTP/1.1 "Hello, World!" server on 127.0.0.1:PORT, one goroutine per connection.

//go:build ignore

package main

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
)

var response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!")

var headEnd = []byte("\r\n\r\n")

// serve answers one response per request head ("\r\n\r\n"-terminated) until the peer closes.
func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if m <= 0 || err != nil {
			return
		}
		n += m

		start, requests := 0, 0
		for {
			i := bytes.Index(buf[start:n], headEnd)
			if i < 0 {
				break
			}
			requests++
			start += i + len(headEnd)
		}
		n = copy(buf, buf[start:n])
		if n == len(buf) {
			return // a request head larger than the buffer
		}
		for ; requests > 0; requests-- {
			if _, err := c.Write(response); err != nil {
				return
			}
		}
	}
}

func main() {
	port := 0
	if len(os.Args) > 1 {
		port, _ = strconv.Atoi(os.Args[1])
	}
	if port <= 0 || port > 65535 {
		fmt.Fprintln(os.Stderr, "usage: go-bench-httpd PORT")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "go-bench-httpd: listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c)
	}
}
