package pxe

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestFailureReasonsBounded: a reason outside the fixed set counts as
// "other" instead of adding a series.
func TestFailureReasonsBounded(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.failure(reasonDenied)
	m.failure("unlisted")
	m.failure("../../etc/passwd")
	if n := testutil.CollectAndCount(m.errors); n != len(reasons()) {
		t.Errorf("%d error series, want the %d fixed reasons", n, len(reasons()))
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(reasonOther)); got != 2 {
		t.Errorf("other = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(reasonDenied)); got != 1 {
		t.Errorf("denied = %v, want 1", got)
	}
}
