package promx

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func counterVec(help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "foundry_test_total", Help: help}, labels)
}

// A second server on one registry must count into the first one's series:
// that is the reason Register exists.
func TestRegisterReusesTheRegisteredTwin(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := Register(reg, counterVec("h", "reason"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, counterVec("h", "reason"))
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if second != first {
		t.Fatal("the second registration did not return the registered collector")
	}
	first.WithLabelValues("a").Inc()
	second.WithLabelValues("a").Inc()
	if got := testutil.ToFloat64(first.WithLabelValues("a")); got != 2 {
		t.Errorf("shared counter = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "foundry_test_total"); err != nil || n != 1 {
		t.Errorf("registry holds %d series (%v), want 1", n, err)
	}
}

func TestRegisterErrors(t *testing.T) {
	tests := []struct {
		name   string
		first  prometheus.Collector
		second func(reg prometheus.Registerer) error
		want   string
	}{
		{"same name, other help", counterVec("h", "reason"), func(reg prometheus.Registerer) error {
			_, err := Register(reg, counterVec("other help", "reason"))
			return err
		}, "different label names or a different help string"},
		{"same name, other labels", counterVec("h", "reason"), func(reg prometheus.Registerer) error {
			_, err := Register(reg, counterVec("h", "code"))
			return err
		}, "different label names or a different help string"},
		// Identical descriptors, but the registered one cannot be used
		// as the collector the caller asked for.
		{"twin of another type", prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "foundry_test", Help: "h"}, func() float64 { return 1 }),
			func(reg prometheus.Registerer) error {
				_, err := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "foundry_test", Help: "h"}))
				return err
			}, "already registered as a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if err := reg.Register(tt.first); err != nil {
				t.Fatal(err)
			}
			err := tt.second(reg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRegisterNilRegistry(t *testing.T) {
	c := counterVec("h", "reason")
	got, err := Register(nil, c)
	if err != nil || got != c {
		t.Fatalf("Register(nil) = %p, %v; want the collector itself", got, err)
	}
	got.WithLabelValues("x").Inc() // still counts
	if v := testutil.ToFloat64(got.WithLabelValues("x")); v != 1 {
		t.Errorf("count = %v", v)
	}
}
