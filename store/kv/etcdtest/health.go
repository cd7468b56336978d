package etcdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// waitHealthy polls each member's /health until it says true: the member
// has a leader and no alarm.
func (c *Cluster) waitHealthy(timeout time.Duration, ms ...*member) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, m := range ms {
		var last string
		for {
			if !c.running(m) {
				return fmt.Errorf("member %s is not running", m.name)
			}
			if ok, why := c.healthy(ctx, m); ok {
				break
			} else {
				last = why
			}
			select {
			case <-m.exited:
				return fmt.Errorf("member %s exited while starting", m.name)
			case <-ctx.Done():
				return fmt.Errorf("member %s not healthy after %v: %s", m.name, timeout, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func (c *Cluster) healthy(ctx context.Context, m *member) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.client+"/health", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := c.https.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var h struct{ Health string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return false, err.Error()
	}
	return h.Health == "true", "health " + h.Health
}

func (c *Cluster) waitListening(timeout time.Duration, m *member) error {
	host := strings.TrimPrefix(strings.TrimPrefix(m.client, "https://"), "http://")
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %s not listening after %v: %w", m.name, timeout, err)
		}
		select {
		case <-m.exited:
			return fmt.Errorf("member %s exited while starting", m.name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logs is the end of every member's log.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		data, _ := os.ReadFile(m.log)
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", m.name, m.log, bytes.Join(lines, []byte("\n")))
	}
	return b.String()
}

// freePorts reserves n ports on host at once, so that they differ, and
// frees them for etcd.
func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("free port on %s: %w", host, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
