package daemon

import (
	"fmt"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/users"
)

// TestUsersAffectedThroughTheDaemon sends failed requests of 20 users
// (three each) and successful ones of others through the OTel SDK into a
// daemon with incidents.user_attribute set, and checks the estimate the
// post-mortem reads, and that the sketches reach the store.
func TestUsersAffectedThroughTheDaemon(t *testing.T) {
	sink := otlptest.NewSink(t)
	cfg := testConfig(t, sink, t.TempDir())
	cfg.Incidents.UserAttribute = "user.id"
	d := startDaemon(t, cfg)
	defer stopDaemon(t, d)

	tp := provider(t, d, "payments", false)
	tr := tp.Tracer("test")
	for i := range 100 {
		_, sp := tr.Start(t.Context(), "POST /charge", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("user.id", fmt.Sprint("u", i%20+100*(i/60)))))
		if i < 60 {
			sp.SetStatus(codes.Error, "declined by the processor")
		}
		sp.End()
	}
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	n, ok, err := d.incData.estimate(t.Context(), "payments", now.Add(-time.Hour), now)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// Four standard errors of the sketch (3.25%), at least one user.
	if math.Abs(float64(n)-20) > math.Max(1, 4*0.0325*20) {
		t.Errorf("users affected %d, want 20", n)
	}
	if err := d.incData.flush(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	rows, err := d.store.UserSketches(t.Context(), "payments", now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	var merged users.Sketch
	for i := range rows {
		merged.Merge(&rows[i].Sketch)
	}
	if len(rows) == 0 || merged.Estimate() != n {
		t.Errorf("stored sketches %d estimate %d, want what memory says (%d)", len(rows), merged.Estimate(), n)
	}
}
