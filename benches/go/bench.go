// Go's side of the fuseau benchmark suite: goroutines with GOMAXPROCS=1,
// the same workloads and parameters as bench-fuseau, bench-tokio and
// bench-may (W1 W2 W3 W4 W5 W5x W5m W6 W9; W7 and W8 are n/a), the same
// "RESULT k=v ..." line. Built by the driver with `go build` when `go` is
// installed. See benches/README.md.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	runtime.GOMAXPROCS(1)
	if len(os.Args) < 2 {
		fail("usage: bench-go <workload> <param>...")
	}
	var p []uint64
	for _, a := range os.Args[2:] {
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			fail("not an integer: " + a)
		}
		p = append(p, v)
	}
	param := func(i int) uint64 {
		if i >= len(p) {
			fail(fmt.Sprintf("%s: missing parameter %d", os.Args[1], i))
		}
		return p[i]
	}
	switch os.Args[1] {
	case "W1":
		w1(param(0))
	case "W2":
		w2(param(0))
	case "W3":
		w3(int(param(0)), param(1))
	case "W4":
		w4(param(0), time.Duration(param(1))*time.Millisecond)
	case "W5", "W5x", "W5m":
		w5(param(0))
	case "W6":
		w6(param(0), param(1), param(2))
	case "W9":
		w9(param(0), param(1), int(param(2)))
	default:
		fail("unknown workload " + os.Args[1])
	}
}

func fail(why string) {
	fmt.Fprintln(os.Stderr, why)
	os.Exit(2)
}

// metric is one field of the RESULT line.
type metric struct {
	name  string
	value float64
}

// report prints the one line the driver parses.
func report(metrics ...metric) {
	fields := make([]string, len(metrics))
	for i, m := range metrics {
		fields[i] = fmt.Sprintf("%s=%.3f", m.name, m.value)
	}
	fmt.Println("RESULT " + strings.Join(fields, " "))
}

func nsPer(d time.Duration, ops uint64) float64 {
	return float64(d.Nanoseconds()) / float64(ops)
}

func ms(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / 1e6
}

// w1: spawn n goroutines returning their index, each with a channel of
// one as its join handle, then join them in order; four rounds, the first
// cold, the mean of the others warm.
func w1(n uint64) {
	var rounds []time.Duration
	for r := 0; r < 4; r++ {
		start := time.Now()
		handles := make([]chan uint64, n)
		for i := uint64(0); i < n; i++ {
			h := make(chan uint64, 1)
			handles[i] = h
			go func(i uint64) { h <- i }(i)
		}
		var sum uint64
		for _, h := range handles {
			sum += <-h
		}
		rounds = append(rounds, time.Since(start))
		if sum != n*(n-1)/2 {
			fail("W1: wrong sum")
		}
	}
	var warm float64
	for _, d := range rounds[1:] {
		warm += nsPer(d, n)
	}
	report(metric{"cold_ns_per_task", nsPer(rounds[0], n)},
		metric{"warm_ns_per_task", warm / float64(len(rounds)-1)})
}

// w2: two goroutines each yield (runtime.Gosched) n/2 times.
func w2(n uint64) {
	start := time.Now()
	var wg sync.WaitGroup
	for t := 0; t < 2; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); i < n/2; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	report(metric{"ns_per_yield", nsPer(time.Since(start), n/2*2)})
}

// w3: one producer, one consumer, n uint64 through a buffered channel.
func w3(capacity int, n uint64) {
	start := time.Now()
	ch := make(chan uint64, capacity)
	sum := make(chan uint64)
	go func() {
		for i := uint64(0); i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	go func() {
		var s uint64
		for x := range ch {
			s += x
		}
		sum <- s
	}()
	s := <-sum
	report(metric{"ns_per_msg", nsPer(time.Since(start), n)})
	if s != n*(n-1)/2 {
		fail("W3: wrong sum")
	}
}

// w4: n goroutines each sleep once for d.
func w4(n uint64, d time.Duration) {
	start := time.Now()
	var wg sync.WaitGroup
	for i := uint64(0); i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(d)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	report(metric{"wall_ms", ms(wall)}, metric{"overhead_ms", ms(wall) - ms(d)})
}

// rssBytes is the second field of /proc/self/statm times the page size.
func rssBytes() uint64 {
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fail(err.Error())
	}
	pages, err := strconv.ParseUint(strings.Fields(string(statm))[1], 10, 64)
	if err != nil {
		fail("statm: " + err.Error())
	}
	return pages * uint64(os.Getpagesize())
}

// w5: n goroutines each blocked receiving on a channel of its own (buffer
// 1, as Tokio's); RSS growth per goroutine, then the time to close every
// channel and join every goroutine.
func w5(n uint64) {
	before := rssBytes()
	var started atomic.Uint64
	var wg sync.WaitGroup
	chans := make([]chan uint64, n)
	for i := range chans {
		c := make(chan uint64, 1)
		chans[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			if _, ok := <-c; ok {
				fail("W5: expected the channel closed")
			}
		}()
	}
	for started.Load() < n {
		runtime.Gosched()
	}
	suspended := rssBytes()
	start := time.Now()
	for _, c := range chans {
		close(c)
	}
	wg.Wait()
	release := time.Since(start)
	var growth uint64
	if suspended > before {
		growth = suspended - before
	}
	report(metric{"rss_bytes_per_task", float64(growth) / float64(n)},
		metric{"release_ns_per_task", nsPer(release, n)})
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		fail(err.Error())
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// peakRSSKiB is VmHWM of /proc/self/status.
func peakRSSKiB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail(err.Error())
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			v, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			if err == nil {
				return v
			}
		}
	}
	fail("/proc/self/status: no VmHWM")
	return 0
}

// w6: the echo server. It announces its port, accepts the load
// generator's connections, serves each in a goroutine sending back
// whatever has arrived, and reports once every one has closed.
func w6(connections, roundTrips, message uint64) {
	cpu := cpuTime()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err.Error())
	}
	fmt.Printf("PORT %d\n", listener.Addr().(*net.TCPAddr).Port)
	echoed := make(chan uint64)
	for i := uint64(0); i < connections; i++ {
		conn, err := listener.Accept()
		if err != nil {
			fail(err.Error())
		}
		go echo(conn, echoed)
	}
	var total uint64
	for i := uint64(0); i < connections; i++ {
		total += <-echoed
	}
	cpu = cpuTime() - cpu
	rts := connections * roundTrips
	if total != rts*message {
		fail("W6: wrong byte count")
	}
	report(metric{"server_cpu_us_per_rt", float64(cpu.Nanoseconds()) / 1e3 / float64(rts)},
		metric{"server_peak_rss_kib", peakRSSKiB()})
}

// echo sends back whatever arrives on conn (TCP_NODELAY is Go's default)
// until the peer closes, then sends the byte count on echoed.
func echo(conn net.Conn, echoed chan<- uint64) {
	defer conn.Close()
	buf := make([]byte, 8*1024)
	var n uint64
	for {
		r, err := conn.Read(buf)
		if r > 0 {
			if _, werr := conn.Write(buf[:r]); werr != nil {
				fail(werr.Error())
			}
			n += uint64(r)
		}
		if err == io.EOF {
			echoed <- n
			return
		}
		if err != nil {
			fail(err.Error())
		}
	}
}

// sendEither sends v on whichever of x and y takes it first (Go's select
// picks at random among the ready cases; it has no biased form).
func sendEither(x, y chan uint64, v uint64) {
	select {
	case x <- v:
	case y <- v:
	}
}

// recvEither receives from whichever of a and b has a value first.
func recvEither(a, b chan uint64) uint64 {
	select {
	case v := <-a:
		return v
	case v := <-b:
		return v
	}
}

// w9: the channel chain, as in bench-fuseau: stages goroutines, each
// receiving from either of two input channels and sending v+1 to either of
// two outputs (the first tried chosen by the parity of v, as far as select
// honours an order), a source and the main goroutine as the sink.
func w9(stages, values uint64, capacity int) {
	start := time.Now()
	pair := func() (chan uint64, chan uint64) {
		return make(chan uint64, capacity), make(chan uint64, capacity)
	}
	firstA, firstB := pair()
	ia, ib := firstA, firstB
	for s := uint64(0); s < stages; s++ {
		oa, ob := pair()
		go func(ia, ib, oa, ob chan uint64) {
			for i := uint64(0); i < values; i++ {
				v := recvEither(ia, ib)
				if v%2 == 0 {
					sendEither(oa, ob, v+1)
				} else {
					sendEither(ob, oa, v+1)
				}
			}
		}(ia, ib, oa, ob)
		ia, ib = oa, ob
	}
	go func() {
		for v := uint64(0); v < values; v++ {
			if v%2 == 0 {
				sendEither(firstA, firstB, v)
			} else {
				sendEither(firstB, firstA, v)
			}
		}
	}()
	var total uint64
	for i := uint64(0); i < values; i++ {
		total += recvEither(ia, ib)
	}
	elapsed := time.Since(start)
	if total != values*(values-1)/2+values*stages {
		fail("W9: wrong total")
	}
	events := stages * values
	report(metric{"events_per_s", float64(events) / elapsed.Seconds()},
		metric{"ns_per_event", nsPer(elapsed, events)})
}
