package dhcp

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// batchPair is a batchServer on a loopback socket and a client socket
// that talks to it.
func batchPair(t *testing.T, answer answerFunc, overload func()) (*batchServer, *net.UDPConn) {
	t.Helper()
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := startBatch(srv, answer, overload, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { s.Close(); s.Wait() })
	cli, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return s, cli
}

// TestBatchServerAnswers: every packet is answered, to the address the
// answer names, with the bytes it returned, whether at once by the reader,
// by a worker or later by a goroutine of the answer's own (a third each);
// Close then Wait returns nil.
func TestBatchServerAnswers(t *testing.T) {
	var i atomic.Int64
	echo := func(b []byte, peer *net.UDPAddr, later func() func(datagram)) (datagram, func() datagram) {
		r := datagram{b: append([]byte("re:"), b...), addr: peer}
		switch i.Add(1) % 3 {
		case 0:
			return r, nil
		case 1:
			return datagram{}, func() datagram { return r }
		}
		send := later()
		go send(r)
		return datagram{}, nil
	}
	s, cli := batchPair(t, echo, func() { t.Error("overload with an idle server") })
	const n = 200
	got := map[string]bool{}
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		if _, err := fmt.Fprintf(cli, "p%d", i); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		k, err := cli.Read(buf)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		got[string(buf[:k])] = true
	}
	for i := range n {
		if !got[fmt.Sprintf("re:p%d", i)] {
			t.Errorf("no answer to p%d", i)
		}
	}
	s.Close()
	if err := s.Wait(); err != nil {
		t.Errorf("Wait after Close: %v", err)
	}
}

// TestBatchServerBoundsItsQueue: with every answer stuck (a store that
// does not answer), the server holds at most batchWorkers + batchQueue
// packets for its workers, or batchQueue answered later, and drops the
// rest as overload, instead of queueing without bound; once the answers
// move again, what it held is answered.
func TestBatchServerBoundsItsQueue(t *testing.T) {
	for _, tt := range []struct {
		name  string
		later bool
		bound int64
	}{
		{"workers", false, batchWorkers + batchQueue},
		{"later", true, batchQueue},
	} {
		t.Run(tt.name, func(t *testing.T) { testBatchBound(t, tt.later, tt.bound) })
	}
}

func testBatchBound(t *testing.T, later bool, bound int64) {
	release := make(chan struct{})
	var taken, done, overloads atomic.Int64
	stuck := func(b []byte, peer *net.UDPAddr, laterFn func() func(datagram)) (datagram, func() datagram) {
		r := datagram{b: bytes.Clone(b), addr: peer}
		answer := func() datagram {
			taken.Add(1)
			<-release
			done.Add(1)
			return r
		}
		if later {
			send := laterFn()
			go func() { send(answer()) }()
			return datagram{}, nil
		}
		return datagram{}, answer
	}
	_, cli := batchPair(t, stuck, func() { overloads.Add(1) })
	const sent = batchWorkers + batchQueue + 1000
	for i := range sent {
		if _, err := fmt.Fprintf(cli, "p%d", i); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let the reader keep up: the kernel's own drops are not what is tested
		}
	}
	// The workers move again only once the reader has read all it will:
	// every packet taken, queued or dropped, or (if the kernel dropped
	// some) no new overload for a while. Released earlier, a reader still
	// behind would queue the rest into the room the workers make.
	settled := func(count *atomic.Int64, enough func(int64) bool) {
		deadline := time.Now().Add(10 * time.Second)
		last, still := int64(-1), time.Now()
		for time.Now().Before(deadline) {
			n := count.Load()
			if enough(n) || (n > 0 && n == last && time.Since(still) > 300*time.Millisecond) {
				return
			}
			if n != last {
				last, still = n, time.Now()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	settled(&overloads, func(n int64) bool { return n+bound >= sent })
	if overloads.Load() == 0 {
		t.Fatalf("no packet dropped as overload after %d sent to stuck workers (taken %d)", sent, taken.Load())
	}
	close(release)
	// What the server held is answered: counted where the answers are
	// made, since the client's own socket may drop replies on a busy host.
	settled(&done, func(n int64) bool { return n == bound })
	answered := done.Load()
	t.Logf("sent %d, answered %d, dropped as overload %d", sent, answered, overloads.Load())
	if answered > bound {
		t.Errorf("answered %d packets, more than the %d the server may hold", answered, bound)
	}
	if answered < batchWorkers {
		t.Errorf("answered %d packets after the answers moved again, want at least %d", answered, batchWorkers)
	}
	// And the answers reach the client.
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cli.Read(make([]byte, 64)); err != nil {
		t.Errorf("no answer reached the client: %v", err)
	}
}

// TestBatchServerAnswersWithoutWorkers: a packet that needs no wait is
// answered by the reader while every worker is stuck on a store that does
// not answer, and Close then waits for the stuck ones.
func TestBatchServerAnswersWithoutWorkers(t *testing.T) {
	release := make(chan struct{})
	var stuck atomic.Int64
	answer := func(b []byte, peer *net.UDPAddr, _ func() func(datagram)) (datagram, func() datagram) {
		r := datagram{b: append([]byte("re:"), b...), addr: peer}
		if bytes.HasPrefix(b, []byte("wait")) {
			return datagram{}, func() datagram {
				stuck.Add(1)
				<-release
				return r
			}
		}
		return r, nil
	}
	s, cli := batchPair(t, answer, func() { t.Error("overload") })
	for i := range batchWorkers {
		if _, err := fmt.Fprintf(cli, "wait%d", i); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for stuck.Load() < batchWorkers && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if stuck.Load() < batchWorkers {
		t.Fatalf("%d of %d workers took a waiting packet", stuck.Load(), batchWorkers)
	}
	buf := make([]byte, 64)
	for i := range 20 {
		if _, err := fmt.Fprintf(cli, "now%d", i); err != nil {
			t.Fatal(err)
		}
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := cli.Read(buf)
		if err != nil {
			t.Fatalf("no answer to now%d while the workers wait: %v", i, err)
		}
		if got, want := string(buf[:k]), fmt.Sprintf("re:now%d", i); got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
	}
	waited := make(chan struct{})
	go func() { s.Close(); s.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while workers were still answering")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-waited
}

// TestBatchWriterPacesBursts: 64 answers finished at once (a group
// commit's ACKs) leave in chunks of paceChunk, paceGap apart, and all of
// them arrive.
func TestBatchWriterPacesBursts(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const n = 64
	s := &batchServer{conn: srv, pc: ipv4.NewPacketConn(srv), replies: make(chan datagram, n),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := range n {
		s.replies <- datagram{b: []byte{byte(i)}, addr: cli.LocalAddr().(*net.UDPAddr)}
	}
	close(s.replies)
	start := time.Now()
	s.write()
	took := time.Since(start)
	if least := (n/paceChunk - 1) * paceGap; took < least {
		t.Errorf("%d replies sent in %v, want at least %v (chunks of %d, %v apart)", n, took, least, paceChunk, paceGap)
	}
	got := map[byte]bool{}
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	for range n {
		k, err := cli.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d replies arrived: %v", len(got), n, err)
		}
		got[buf[k-1]] = true
	}
	if len(got) != n {
		t.Errorf("%d distinct replies of %d", len(got), n)
	}
}
