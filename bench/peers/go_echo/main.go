// go_echo: the Go peer of the echo benchmark.
//
//	go_echo [--host H] [--port P]   (defaults: all IPv6 and IPv4 addresses, port 0)
//
// A goroutine per connection reads into its own 16 KiB buffer and writes
// every byte back, as bench/baselines/echo_*.c do.  GOMAXPROCS is 1 so Go
// runs its goroutines on one core, like the other single-loop peers (the
// runtime still keeps helper threads, which is part of what Go costs).
// Prints "listening on HOST:PORT" once ready; exits 0 on SIGTERM or SIGINT.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const bufSize = 16 * 1024 // as examples/echo_server.c's buffers

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			// Write returns only once all n bytes are written, or on error.
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF: the peer closed; anything else: reset
			return
		}
	}
}

// raiseNofile lifts the soft RLIMIT_NOFILE to the hard limit so 10,000
// connections fit.  Go 1.19 does this itself at start; doing it here keeps
// the program correct on any Go version.
func raiseNofile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Fprintf(os.Stderr, "go_echo: setrlimit: %v\n", err)
		}
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	host := flag.String("host", "", "address to listen on (default: all IPv6 and IPv4 addresses)")
	port := flag.Int("port", 0, "port (0: a free one)")
	flag.Parse()
	if flag.NArg() != 0 || *port < 0 || *port > 65535 {
		flag.Usage()
		os.Exit(2)
	}
	raiseNofile()

	// Listen for signals before printing the ready line, so a SIGTERM sent
	// right after it is never lost to the default action.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	// An empty host makes Go open one dual-stack [::] socket.
	l, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_echo: listen: %v\n", err)
		os.Exit(1)
	}
	// os.Stdout is unbuffered: the line is out when Printf returns.
	fmt.Printf("listening on %s\n", l.Addr())

	go func() {
		<-sig
		os.Exit(0)
	}()

	pause := 5 * time.Millisecond
	for {
		c, err := l.Accept()
		if err != nil {
			// Out of descriptors or memory: the connection waits in the
			// backlog; retry after a pause that grows while this lasts.
			if errors.Is(err, syscall.EMFILE) ||
				errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
				errors.Is(err, syscall.ENOMEM) {
				time.Sleep(pause)
				if pause < time.Second {
					pause *= 2
				}
				continue
			}
			// Go already retries EINTR and ECONNABORTED inside Accept.
			fmt.Fprintf(os.Stderr, "go_echo: accept: %v\n", err)
			os.Exit(1)
		}
		pause = 5 * time.Millisecond
		go echo(c)
	}
}
