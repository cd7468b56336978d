package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

func TestLabelsAreBounded(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"GET", methodLabel("GET"), "GET"},
		{"PATCH", methodLabel("PATCH"), "PATCH"},
		{"lower-case get is another method", methodLabel("get"), "other"},
		{"invented method", methodLabel("BREW"), "other"},
		{"megabyte method", methodLabel(strings.Repeat("A", 1<<20)), "other"},
		{"empty method", methodLabel(""), "other"},
		{"pattern with method", routeLabel("GET /images/"), "/images/"},
		{"pattern without method", routeLabel("/boot/"), "/boot/"},
		{"no pattern", routeLabel(""), "unmatched"},
		{"200", codeLabel(200), "200"},
		{"599", codeLabel(599), "599"},
		{"99", codeLabel(99), "other"},
		{"600", codeLabel(600), "other"},
		{"negative", codeLabel(-1), "other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestHostileRequestsAddNoSeries sends what an attacker controls (method
// and path) through wrap and counts the series.
func TestHostileRequestsAddNoSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/", func(http.ResponseWriter, *http.Request) {})
	h := m.wrap(mux, slog.New(slog.DiscardHandler))
	for i := range 50 {
		for _, method := range []string{fmt.Sprintf("M%d%s", i, strings.Repeat("X", 4096)), "GET"} {
			r := httptest.NewRequest(method, fmt.Sprintf("/images/%d/%s", i, strings.Repeat("p", i)), nil)
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	// (other, unmatched, 405) and (GET, /images/, 200); the histogram has
	// one series per method and route.
	if n := testutil.CollectAndCount(m.requests); n != 2 {
		t.Errorf("%d request series after 100 hostile requests, want 2", n)
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d duration series after 100 hostile requests, want 2", n)
	}
	out, err := testutil.CollectAndFormat(m.requests, expfmt.TypeTextPlain, "foundry_http_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 1024 || strings.Contains(string(out), "XXXX") {
		t.Errorf("metrics carry request text:\n%.2000s", out)
	}
}
