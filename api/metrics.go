package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/internal/promx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics counts HTTP requests by route pattern (never by raw path), by
// method and by status code. Every label value comes from a fixed set
// (methodLabel, routeLabel, codeLabel): a label fed from the request as
// sent would let any client create series without bound, and each series
// is kept for the life of the process.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foundry_http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "foundry_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests (long polls and event streams included), by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	// A second Server on one registry shares the counters.
	var err error
	if m.requests, err = promx.Register(reg, m.requests); err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	if m.duration, err = promx.Register(reg, m.duration); err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	return m, nil
}

// wrap counts and times every request and writes the access log at debug
// level (operators turn it on to see what a booting machine fetched).
func (m *metrics) wrap(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		method, route := methodLabel(r.Method), routeLabel(r.Pattern)
		m.requests.WithLabelValues(method, route, codeLabel(rec.code)).Inc()
		took := time.Since(start)
		m.duration.WithLabelValues(method, route).Observe(took.Seconds())
		// The bounded method, too: a method name may be up to a megabyte.
		log.Debug("http request", "method", method, "path", r.URL.Path, "status", rec.code,
			"bytes", rec.bytes, "took", took.Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}

// methodLabel is the "method" label: one of the methods of RFC 9110 and
// PATCH, else "other". net/http accepts any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// routeLabel is the "route" label: the pattern ServeMux matched (stored in
// the request it was given), without its method, or "unmatched". Patterns
// are the ones this server registered, so the set is fixed.
func routeLabel(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:]
	}
	if pattern == "" {
		return "unmatched"
	}
	return pattern
}

// codeLabel is the "code" label: a status code from 100 to 599, else
// "other". Handlers choose the code, but a bound here does not depend on
// every handler choosing well.
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// statusRecorder remembers the status code. It exposes Unwrap so that
// http.ResponseController and huma's SSE writer reach the connection's
// Flush and SetWriteDeadline.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	bytes   int64
	written bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.written {
		s.code, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.written = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
