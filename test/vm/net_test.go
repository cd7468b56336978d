package vm

import (
	"strings"
	"testing"
)

func TestCheckHostForward(t *testing.T) {
	for rule, want := range map[string]string{
		"tcp:127.0.0.1:18080-:8080":            "",
		"udp:127.0.0.1:1069-10.0.2.15:69":      "",
		":127.0.0.1:2222-:22":                  "", // QEMU's default protocol is tcp
		"tcp::18080-:8080":                     "bound to 127.0.0.1",
		"tcp:0.0.0.0:18080-:8080":              "bound to 127.0.0.1",
		"tcp:192.168.1.5:18080-:8080":          "bound to 127.0.0.1",
		"tcp:127.0.0.2:18080-:8080":            "bound to 127.0.0.1",
		"tcp:localhost:18080-:8080":            "bound to 127.0.0.1",
		"127.0.0.1:18080-:8080":                "neither tcp nor udp",
		"sctp:127.0.0.1:1-:1":                  "neither tcp nor udp",
		"tcp:127.0.0.1:0-:8080":                "host port",
		"tcp:127.0.0.1:65536-:8080":            "host port",
		"tcp:127.0.0.1:080-:8080":              "host port",
		"tcp:127.0.0.1:18080-:":                "guest port",
		"tcp:127.0.0.1:18080-8080":             "guest port",
		"tcp:127.0.0.1:18080":                  "want",
		"tcp:127.0.0.1:18080-:8080,restrict":   "comma",
		"tcp:127.0.0.1:1-:1,hostfwd=tcp::2-:2": "comma",
		"":                                     "want",
	} {
		err := checkHostForward(rule)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", rule, err, want)
		}
	}
}

// Whatever a test writes, an accepted rule listens on loopback only and
// adds no option of its own to the -netdev argument.
func FuzzCheckHostForward(f *testing.F) {
	for _, s := range []string{"tcp:127.0.0.1:18080-:8080", "udp:127.0.0.1:1-10.0.2.15:2", "tcp::1-:1", ":127.0.0.1:1-:1,x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rule string) {
		if checkHostForward(rule) != nil {
			return
		}
		proto, _, _ := strings.Cut(rule, ":")
		if !strings.HasPrefix(rule, proto+":127.0.0.1:") || strings.Contains(rule, ",") {
			t.Fatalf("accepted %q", rule)
		}
	})
}
