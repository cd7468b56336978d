package nstest

import (
	"errors"
	"net"
	"os"
	"regexp"
	"testing"
)

// The namespace must start with nothing but loopback: that is what keeps
// every test's traffic off real networks.
func TestOnlyLoopbackInside(t *testing.T) {
	if Reexec(t) {
		return
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" {
			t.Errorf("interface %q visible inside the test namespace", i.Name)
		}
		if i.Name == "lo" && i.Flags&net.FlagUp == 0 {
			t.Error("loopback is down inside the test namespace")
		}
	}
	Veth(t, "vt0", "vt1", "10.99.0.1/24")
	if _, err := net.InterfaceByName("vt1"); err != nil {
		t.Fatalf("veth peer not created: %v", err)
	}
}

// A subtest can ask for a namespace of its own, and a skip inside the
// namespace is reported as a skip of the test outside, with its reason.
func TestReexecSubtestAndSkip(t *testing.T) {
	var skipped bool
	t.Run("inner skip/with space", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		if Reexec(t) {
			return
		}
		if os.Getenv(envTest) != t.Name() {
			t.Errorf("%s=%q inside, want %q", envTest, os.Getenv(envTest), t.Name())
		}
		t.Skip("skipped on purpose")
	})
	if !skipped {
		t.Error("the subtest's skip in its namespace was not reported as a skip")
	}
}

func TestRunPattern(t *testing.T) {
	tests := []struct {
		name        string
		match, miss []string
	}{
		{"TestServe", []string{"TestServe"}, []string{"TestServeDecline", "XTestServe"}},
		{"TestA/sub_1", []string{"TestA/sub_1"}, []string{"TestA/sub_10", "TestAB/sub_1"}},
		{"TestA/x.(y)+", []string{"TestA/x.(y)+"}, []string{"TestA/xx(y)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := runPattern(tt.name)
			// -test.run matches each slash-separated element on its own.
			matches := func(name string) bool {
				ps, ns := splitSlash(p), splitSlash(name)
				if len(ps) != len(ns) {
					return false
				}
				for i := range ps {
					if !regexp.MustCompile(ps[i]).MatchString(ns[i]) {
						return false
					}
				}
				return true
			}
			for _, n := range tt.match {
				if !matches(n) {
					t.Errorf("%q does not select %q", p, n)
				}
			}
			for _, n := range tt.miss {
				if matches(n) {
					t.Errorf("%q also selects %q", p, n)
				}
			}
		})
	}
}

// splitSlash splits at slashes outside brackets and parentheses, as
// testing's -run does.
func splitSlash(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case '/':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func TestOutcome(t *testing.T) {
	exit1 := errors.New("exit status 1")
	tests := []struct {
		name, test, out string
		runErr          error
		want            string // "pass", "skip:<reason>" or "error"
	}{
		{"pass", "TestServe", "=== RUN   TestServe\n--- PASS: TestServe (0.50s)\nPASS\n", nil, "pass"},
		{"fail", "TestServe", "=== RUN   TestServe\n    x_test.go:1: boom\n--- FAIL: TestServe (0.50s)\nFAIL\n", exit1, "error"},
		{"fail line but exit 0", "TestServe", "--- FAIL: TestServe (0.50s)\n", nil, "error"},
		// Verbose output streams the log before the result line.
		{"skip with reason", "TestServe",
			"=== RUN   TestServe\n    x_test.go:8: probing\n    x_test.go:9: no veth support\n--- SKIP: TestServe (0.00s)\nPASS\n",
			nil, "skip:x_test.go:9: no veth support"},
		{"subtest skip", "TestB/x_y/z",
			"=== RUN   TestB\n=== RUN   TestB/x_y/z\n    a_test.go:4: inner why\n--- PASS: TestB (0.00s)\n    --- SKIP: TestB/x_y/z (0.00s)\nPASS\n",
			nil, "skip:a_test.go:4: inner why"},
		{"subtest", "TestA/b",
			"=== RUN   TestA\n=== RUN   TestA/b\n--- PASS: TestA (0.00s)\n    --- PASS: TestA/b (0.00s)\nPASS\n", nil, "pass"},
		{"another test's pass is not ours", "TestServe",
			"--- PASS: TestServeDecline (0.1s)\nPASS\n", nil, "error"},
		{"no tests to run", "TestServe", "testing: warning: no tests to run\nPASS\n", nil, "error"},
		{"killed", "TestServe", "=== RUN   TestServe\n", errors.New("signal: killed"), "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := outcome(tt.test, tt.out, tt.runErr)
			got := "pass"
			switch {
			case r.err != nil:
				got = "error"
			case r.skipped:
				got = "skip:" + r.reason
			}
			if got != tt.want {
				t.Errorf("outcome = %q (%v), want %q", got, r.err, tt.want)
			}
		})
	}
}
