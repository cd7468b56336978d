package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// getFrom is get sent from inside client namespace ns, with that
// namespace's address: the way a booting machine fetches its script. The
// appliance gives a boot nonce only to the address it has just leased to
// the machine, so a test that needs one must ask from there.
func getFrom(t *testing.T, ns, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, ns, network, addr)
		},
	}}
	resp, err := client.Get(url)
	if err != nil {
		// What the two ends' network looked like, for a failure that does
		// not come back when the test runs again.
		var state strings.Builder
		for _, c := range [][]string{
			{"ip", "netns", "exec", ns, "ip", "-4", "addr"}, {"ip", "netns", "exec", ns, "ip", "neigh"},
			{"ip", "netns", "exec", ns, "ss", "-tan"}, {"ip", "-4", "addr"}, {"ip", "neigh"}, {"ss", "-tan"},
		} {
			out, _ := exec.Command(c[0], c[1:]...).CombinedOutput()
			fmt.Fprintf(&state, "$ %s\n%s", strings.Join(c, " "), out)
		}
		t.Fatalf("GET %s from %s: %v\n%s", url, ns, err, state.String())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s from %s: %v", url, ns, err)
	}
	return resp.StatusCode, string(b)
}

// dialIn opens a connection from inside namespace ns. A socket belongs to
// the namespace it was created in, so only the dial needs the thread moved.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, fmt.Errorf("enter %s: %w", ns, err)
	}
	defer netns.Set(orig)
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
