package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testLinks = []Link{
	{Name: "ens3", MAC: "52:54:00:12:34:56", Driver: "virtio_net", Carrier: false},
	{Name: "ens4", MAC: "52:54:00:12:34:57", Driver: "e1000", Carrier: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.122.50/24")}},
	{Name: "ens5", MAC: "52:54:00:12:34:58", Driver: "e1000", Carrier: true},
}

var testDisks = []Disk{
	{Path: "/dev/vdb", Size: 8 << 30, Model: "QEMU HARDDISK"},
	{Path: "/dev/vdc", Size: 512 << 20},
}

// step is one exchange: the exact prompt Setup must print next (after any
// number of non-prompt lines) and the line typed in answer.
type step struct{ prompt, answer string }

// The prompts as printed with their usual defaults.
const (
	pIf2    = PromptInterface + " [2]: "
	pAddr   = PromptAddress + " [10.77.0.1/24]: "
	pRange  = PromptRange + " [10.77.0.100-10.77.0.200]: "
	pRouter = PromptRouter + " []: "
	pVDB    = PromptFormat + "/dev/vdb (8.0 GiB, QEMU HARDDISK) as the data disk FOUNDRY-DATA? Everything on it is erased. [y/N]: "
	pVDC    = PromptFormat + "/dev/vdc (512.0 MiB) as the data disk FOUNDRY-DATA? Everything on it is erased. [y/N]: "
	pApply  = PromptApply + " [Y/n]: "
)

// converse runs Setup with input and output through io.Pipe, answering the
// script, and returns Setup's result and everything it printed. A prompt out
// of order, or one more than scripted, fails the test.
func converse(t *testing.T, ctx context.Context, links []Link, blanks []Disk, check func(Answers) error, script []step) (Answers, error, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	in := NewInput(ctx, inR)

	type result struct {
		a   Answers
		err error
	}
	res := make(chan result, 1)
	go func() {
		a, err := Setup(ctx, in, outW, links, blanks, check)
		outW.Close()
		res <- result{a, err}
	}()

	var transcript strings.Builder
	var problems []string
	buf := ""
	chunk := make([]byte, 4096)
	next := 0
	for {
		if next < len(script) {
			want := script[next].prompt
			if i := strings.Index(buf, want); i >= 0 {
				if n := strings.Count(buf[:i+len(want)], "]: "); n != 1 {
					problems = append(problems, fmt.Sprintf("step %d: %d prompts before %q:\n%s", next, n, want, buf))
					cancel()
				}
				buf = buf[i+len(want):]
				io.WriteString(inW, script[next].answer+"\n")
				next++
				continue
			}
		}
		n, err := outR.Read(chunk)
		transcript.Write(chunk[:n])
		buf += string(chunk[:n])
		if err != nil {
			break
		}
		// Each prompt is one Write, so a "]: " that is not the expected
		// prompt is a wrong one: fail now rather than at the timeout.
		if strings.Contains(buf, "]: ") && (next == len(script) || !strings.Contains(buf, script[next].prompt)) {
			problems = append(problems, fmt.Sprintf("an unscripted prompt: %q", buf))
			buf = ""
			cancel()
		}
	}
	inW.Close()
	r := <-res
	if next < len(script) {
		problems = append(problems, fmt.Sprintf("Setup ended (%v) before the prompt %q", r.err, script[next].prompt))
	}
	for _, p := range problems {
		t.Errorf("%s\ntranscript:\n%s", p, transcript.String())
	}
	return r.a, r.err, transcript.String()
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func TestSetup(t *testing.T) {
	rejectOnce := func() func(Answers) error {
		n := 0
		return func(a Answers) error {
			n++
			if n == 1 {
				return fmt.Errorf("segment discovery: subnet %v overlaps segment lab", a.Address.Masked())
			}
			return nil
		}
	}
	tests := []struct {
		name   string
		blanks []Disk
		check  func(Answers) error
		script []step
		want   Answers
		says   []string // in the transcript, in order
	}{
		{name: "defaults accepted",
			script: []step{{pIf2, ""}, {pAddr, ""}, {pRange, ""}, {pRouter, ""}, {pApply, ""}},
			want:   Answers{Link: testLinks[1], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.100"), RangeEnd: ip("10.77.0.200")},
			says: []string{"1  ens3  52:54:00:12:34:56  virtio_net  no link  no address",
				"2  ens4  52:54:00:12:34:57  e1000  link up  192.168.122.50/24",
				"Summary:", "ens4 (52:54:00:12:34:57)", "10.77.0.1/24", "10.77.0.100-10.77.0.200", "Router                  none"}},
		{name: "interface by name, MAC, unknown",
			script: []step{{pIf2, "eth9"}, {pIf2, "4"}, {pIf2, "52-54-00-12-34-58"}, {pAddr, "192.168.5.10/24"},
				{PromptRange + " [192.168.5.100-192.168.5.200]: ", ""}, {pRouter, "192.168.5.1"}, {pApply, "y"}},
			want: Answers{Link: testLinks[2], Address: pfx("192.168.5.10/24"), RangeStart: ip("192.168.5.100"),
				RangeEnd: ip("192.168.5.200"), Router: ip("192.168.5.1")},
			says: []string{`unknown interface "eth9"`, "there is no interface 4: answer a number from 1 to 3"}},
		{name: "invalid CIDR re-asked",
			script: []step{{pIf2, "ens3"}, {pAddr, "10.77.0.1"}, {pAddr, "10.77.0.1/33"}, {pAddr, "10.77.0.0/24"},
				{pAddr, "fd00::1/64"}, {pAddr, "10.77.0.255/24"}, {pAddr, "10.77.0.1/31"},
				{pAddr, "172.16.0.1/16"}, {PromptRange + " [172.16.100.0-172.16.200.0]: ", ""}, {pRouter, ""}, {pApply, ""}},
			want: Answers{Link: testLinks[0], Address: pfx("172.16.0.1/16"), RangeStart: ip("172.16.100.0"), RangeEnd: ip("172.16.200.0")},
			says: []string{`"10.77.0.1" is not an address with its prefix length`, `"10.77.0.1/33" is not an address`,
				"10.77.0.0 is the network address of 10.77.0.0/24", "fd00::1/64 is not an IPv4 address",
				"10.77.0.255 is the broadcast address", "the prefix length must be /8 to /30"}},
		{name: "bad range re-asked",
			script: []step{{pIf2, ""}, {pAddr, ""}, {pRange, "10.78.0.1-10.78.0.9"}, {pRange, "10.77.0.200-10.77.0.100"},
				{pRange, "10.77.0.1-10.77.0.50"}, {pRange, "10.77.0.0-10.77.0.50"}, {pRange, "10.77.0.10"},
				{pRange, "10.77.0.10 - 10.77.0.19"}, {pRouter, ""}, {pApply, ""}},
			want: Answers{Link: testLinks[1], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.10"), RangeEnd: ip("10.77.0.19")},
			says: []string{"range start: 10.78.0.1 is outside the subnet 10.77.0.0/24", "range start 10.77.0.200 is after its end 10.77.0.100",
				"range 10.77.0.1-10.77.0.50 contains the appliance's own address 10.77.0.1", "range start: 10.77.0.0 is the network address",
				`"10.77.0.10" is not a range`}},
		{name: "bad router re-asked",
			script: []step{{pIf2, ""}, {pAddr, ""}, {pRange, ""}, {pRouter, "10.77.0.150"}, {pRouter, "10.77.0.1"},
				{pRouter, "10.1.1.1"}, {pRouter, "gateway"}, {pRouter, "none"}, {pApply, ""}},
			want: Answers{Link: testLinks[1], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.100"), RangeEnd: ip("10.77.0.200")},
			says: []string{"10.77.0.150 is inside the DHCP range", "the appliance's own address", "10.1.1.1 is outside the subnet", `"gateway" is not an IPv4 address`}},
		{name: "check error goes back to the address",
			check: rejectOnce(),
			script: []step{{pIf2, ""}, {pAddr, "10.80.0.1/24"}, {PromptRange + " [10.80.0.100-10.80.0.200]: ", "10.80.0.20-10.80.0.30"},
				{pRouter, ""},
				// Back at the address, the previous answers offered again.
				{PromptAddress + " [10.80.0.1/24]: ", ""}, {PromptRange + " [10.80.0.20-10.80.0.30]: ", ""}, {pRouter, ""}, {pApply, ""}},
			want: Answers{Link: testLinks[1], Address: pfx("10.80.0.1/24"), RangeStart: ip("10.80.0.20"), RangeEnd: ip("10.80.0.30")},
			says: []string{"segment discovery: subnet 10.80.0.0/24 overlaps segment lab"}},
		{name: "format the first disk",
			blanks: testDisks,
			script: []step{{pIf2, ""}, {pAddr, ""}, {pRange, ""}, {pRouter, ""}, {pVDB, "Y"}, {pApply, ""}},
			want:   Answers{Link: testLinks[1], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.100"), RangeEnd: ip("10.77.0.200"), Format: "/dev/vdb"},
			says:   []string{"Data disk               /dev/vdb, to be formatted as FOUNDRY-DATA"}},
		{name: "format the second disk",
			blanks: testDisks,
			script: []step{{pIf2, ""}, {pAddr, ""}, {pRange, ""}, {pRouter, ""}, {pVDB, "maybe"}, {pVDB, ""}, {pVDC, "yes"}, {pApply, ""}},
			want:   Answers{Link: testLinks[1], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.100"), RangeEnd: ip("10.77.0.200"), Format: "/dev/vdc"},
			says:   []string{`answer y or n, not "maybe"`}},
		{name: "format none",
			blanks: testDisks,
			script: []step{{pIf2, ""}, {pAddr, ""}, {pRange, ""}, {pRouter, ""}, {pVDB, "n"}, {pVDC, "no"}, {pApply, "Y"}},
			want:   Answers{Link: testLinks[1], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.100"), RangeEnd: ip("10.77.0.200")},
			says:   []string{"Data disk               none formatted"}},
		{name: "n at apply starts again",
			blanks: testDisks[:1],
			script: []step{{pIf2, "3"}, {pAddr, "10.9.0.1/24"}, {PromptRange + " [10.9.0.100-10.9.0.200]: ", ""}, {pRouter, "10.9.0.254"},
				{pVDB, "y"}, {pApply, "n"},
				{PromptInterface + " [3]: ", "1"}, {PromptAddress + " [10.9.0.1/24]: ", "10.77.0.1/24"}, {pRange, ""},
				{pRouter, ""}, {pVDB, ""}, {pApply, "yes"}},
			want: Answers{Link: testLinks[0], Address: pfx("10.77.0.1/24"), RangeStart: ip("10.77.0.100"), RangeEnd: ip("10.77.0.200")},
			says: []string{"Router                  10.9.0.254", "Data disk               /dev/vdb, to be formatted", "Network interfaces:", "Router                  none", "none formatted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err, transcript := converse(t, context.Background(), testLinks, tt.blanks, tt.check, tt.script)
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("answers = %+v\nwant      %+v", got, tt.want)
			}
			rest := transcript
			for _, s := range tt.says {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Errorf("transcript lacks %q (or not in order):\n%s", s, transcript)
					continue
				}
				rest = rest[i+len(s):]
			}
		})
	}
}

func TestSetupEnds(t *testing.T) {
	t.Run("context canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		inR, inW := io.Pipe()
		defer inW.Close()
		outR, outW := io.Pipe()
		go io.Copy(io.Discard, outR)
		done := make(chan error, 1)
		go func() {
			_, err := Setup(ctx, NewInput(ctx, inR), outW, testLinks, nil, nil)
			done <- err
		}()
		io.WriteString(inW, "2\n") // answer the first question, then wait at the second
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || err != ctx.Err() {
				t.Errorf("Setup after cancel = %v, want ctx.Err()", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Setup did not end with its context")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		r, w := io.Pipe()
		defer w.Close()
		_, err := Setup(ctx, NewInput(context.Background(), r), io.Discard, testLinks, nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Setup past its deadline = %v", err)
		}
	})
	t.Run("input ends", func(t *testing.T) {
		_, err := Setup(context.Background(), NewInput(context.Background(), strings.NewReader("1\n")), io.Discard, testLinks, nil, nil)
		if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), PromptAddress) {
			t.Errorf("Setup with its input gone = %v, want EOF at the address question", err)
		}
	})
	t.Run("no links", func(t *testing.T) {
		_, err := Setup(context.Background(), NewInput(context.Background()), io.Discard, nil, nil, nil)
		if err == nil {
			t.Error("Setup without a link succeeded")
		}
	})
	t.Run("no link with carrier", func(t *testing.T) {
		down := []Link{{Name: "a"}, {Name: "b"}}
		got, err, _ := converse(t, context.Background(), down, nil, nil,
			[]step{{PromptInterface + " [1]: ", ""}, {pAddr, ""}, {pRange, ""}, {pRouter, ""}, {pApply, ""}})
		if err != nil || got.Link.Name != "a" {
			t.Errorf("Setup = %+v, %v; want the first link", got, err)
		}
	})
}
