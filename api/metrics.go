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

// metrics counts HTTP requests by route pattern (never by raw path, which
// would let any client create unbounded label values).
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
		// ServeMux stores the matched pattern in the request it was given.
		route := r.Pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(r.Method, route, strconv.Itoa(rec.code)).Inc()
		took := time.Since(start)
		m.duration.WithLabelValues(r.Method, route).Observe(took.Seconds())
		log.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", rec.code,
			"bytes", rec.bytes, "took", took.Round(time.Microsecond), "remote", r.RemoteAddr)
	})
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
