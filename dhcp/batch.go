package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// Sizes of a batchServer. The workers are many because a worker answering
// a REQUEST waits for its lease's synced commit (store/leasebatch.go): the
// commit is shared only by the leases that are waiting for it at the same
// time, so the DORA rate is about workers ÷ sync latency.
const (
	// batchMessages is how many datagrams one recvmmsg or sendmmsg moves.
	batchMessages = 64
	// batchWorkers answer packets concurrently.
	batchWorkers = 256
	// batchQueue bounds the packets read and not yet taken by a worker.
	// When it is full, packets are dropped as they arrive ("overload")
	// instead of queueing answers that would come after the client gave
	// up: under overload, goodput stays near the sustainable rate.
	batchQueue = 2048
	// maxDatagram is the largest DHCP packet read whole (Ethernet jumbo
	// frames aside; a longer one is truncated and fails to parse).
	maxDatagram = 4096
	// paceChunk and paceGap pace the writer: a lease group commit
	// finishes tens of ACKs at once, and sent in one burst they overran
	// the receive buffer of the relay that takes them (perfdhcp's 208 KB
	// socket at 8,800 DORA/s dropped 32-324 replies per 3 s run). The
	// writer sends at most paceChunk at once and, while more wait, the
	// next chunk paceGap later: 60 ACKs leave over 0.6 ms (dropped 6-44;
	// bench/README.md). The reader's own replies are never held.
	paceChunk = 16
	paceGap   = 200 * time.Microsecond
)

// dropOverload is the drop reason of a packet that found the queue full.
const dropOverload = "overload"

// datagram is one packet read, or one reply to send.
type datagram struct {
	b    []byte
	addr *net.UDPAddr
}

// batchServer serves one UDP socket with batched system calls: one reader
// (recvmmsg) that answers at once what needs no wait and sends those
// replies together (sendmmsg), a bounded queue of the packets that must
// wait for the store, a fixed pool of workers that finish them, and one
// writer (sendmmsg) that sends the replies finished elsewhere, those ready
// together and paced (paceChunk). An answer may also be finished by
// another goroutine without a worker (later: a REQUEST whose lease the
// store's writer finishes). It replaces a goroutine per packet and a
// sendto per reply, which were most of the DHCP server's CPU at high
// rates, and it hands a packet to another goroutine only when it must
// wait: on a 2-core machine each hand-off is a futex wake and a context
// switch (bench/README.md).
type batchServer struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	// answer answers one packet: its reply and where it goes (nil b: no
	// reply), or, for a packet whose answer must wait (for a synced
	// write), a func that answers it, which a worker runs, or nothing
	// when it called later and answers through the func it got. It is
	// called by the reader only; the packet's bytes are not kept after it
	// returns.
	answer answerFunc
	// overload counts a packet dropped because the queue was full.
	overload func()
	log      *slog.Logger

	queue   chan func() datagram
	replies chan datagram
	// pending counts the answers registered by later and not yet sent;
	// laterDone waits for them when the reader stops.
	pending   atomic.Int64
	laterDone sync.WaitGroup
	done      chan error
	once      sync.Once
}

// answerFunc is what a batchServer asks of each packet (batchServer.answer).
type answerFunc func(b []byte, peer *net.UDPAddr, later func() func(datagram)) (datagram, func() datagram)

// startBatch starts serving conn; Close stops it.
func startBatch(conn *net.UDPConn, answer answerFunc, overload func(), log *slog.Logger) *batchServer {
	s := &batchServer{
		conn:     conn,
		pc:       ipv4.NewPacketConn(conn),
		answer:   answer,
		overload: overload,
		log:      log,
		queue:    make(chan func() datagram, batchQueue),
		// Room for every answer that may be in progress (the queue's,
		// the workers' and later's), so that the goroutine finishing one
		// (the store's lease writer) never waits for the writer.
		replies: make(chan datagram, batchQueue+batchWorkers),
		done:    make(chan error, 1),
	}
	var workers sync.WaitGroup
	for range batchWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for rest := range s.queue {
				if r := rest(); r.b != nil {
					s.replies <- r
				}
			}
		}()
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		s.write()
	}()
	go func() {
		err := s.read()
		close(s.queue)
		workers.Wait()
		s.laterDone.Wait()
		close(s.replies)
		<-written
		s.done <- err
	}()
	return s
}

// read answers packets from the socket until it is closed (nil) or fails:
// at once, replying with the batch read, or through the queue.
func (s *batchServer) read() error {
	msgs := make([]ipv4.Message, batchMessages)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
	}
	out := make([]ipv4.Message, 0, batchMessages)
	later := s.later // once: a method value passed on is a heap object
	for {
		n, err := s.pc.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if isTemporary(err) {
				continue
			}
			return fmt.Errorf("read dhcp packets: %w", err)
		}
		out = out[:0]
		for i := range msgs[:n] {
			m := &msgs[i]
			peer, _ := m.Addr.(*net.UDPAddr)
			if peer == nil {
				continue
			}
			// Only the reader adds to the queue and to pending: room now
			// is room after answer. When they are full the packet is
			// dropped unread, as whatever it asks would come too late.
			if len(s.queue)+int(s.pending.Load()) >= cap(s.queue) {
				s.overload()
				continue
			}
			r, rest := s.answer(m.Buffers[0][:m.N], peer, later)
			if rest != nil {
				s.queue <- rest
			}
			if r.b != nil {
				out = append(out, message(r))
			}
		}
		s.send(out)
	}
}

// later registers an answer that another goroutine finishes; it must
// call the func returned exactly once, with the reply (nil b: none). Only
// the reader calls it (through answer).
func (s *batchServer) later() func(datagram) {
	s.pending.Add(1)
	s.laterDone.Add(1)
	return func(d datagram) {
		if d.b != nil {
			s.replies <- d
		}
		s.pending.Add(-1)
		s.laterDone.Done()
	}
}

// write sends replies, up to paceChunk at once of those ready and, while
// more wait, paceGap apart, until the workers and the answers finished
// later are done.
func (s *batchServer) write() {
	batch := make([]ipv4.Message, 0, paceChunk)
	for first := range s.replies {
		batch = append(batch[:0], message(first))
	more:
		for len(batch) < paceChunk {
			select {
			case r, ok := <-s.replies:
				if !ok {
					break more
				}
				batch = append(batch, message(r))
			default:
				break more
			}
		}
		s.send(batch)
		if len(s.replies) > 0 {
			time.Sleep(paceGap)
		}
	}
}

// send sends a batch of replies; the reader and the writer both do.
func (s *batchServer) send(batch []ipv4.Message) {
	for len(batch) > 0 {
		n, err := s.pc.WriteBatch(batch, 0)
		if errors.Is(err, net.ErrClosed) {
			return // stopping: the clients retransmit to whoever serves next
		}
		if err != nil {
			// The first unsent reply failed: say so and go on with the
			// rest (its client retransmits).
			s.log.Warn("dhcp reply not sent", "to", batch[n].Addr.String(), "err", err)
			n++
		}
		batch = batch[min(n, len(batch)):]
	}
}

func message(d datagram) ipv4.Message {
	return ipv4.Message{Buffers: [][]byte{d.b}, Addr: d.addr}
}

// isTemporary reports a read error after which the socket still works
// (an ICMP error queued for an earlier send, for one).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary() && !errors.Is(err, net.ErrClosed)
}

// Close stops reading; Wait returns once every packet read is answered.
func (s *batchServer) Close() {
	s.once.Do(func() { s.conn.Close() })
}

// Wait returns the reader's error (nil after Close), once the workers and
// the writer have stopped.
func (s *batchServer) Wait() error {
	err := <-s.done
	s.done <- err // a second Wait returns too
	return err
}
