package daemon

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// hangingBackend accepts connections and never answers, as a backend
// behind a dead load balancer does: an export to it waits for its
// context.
func hangingBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestShutdownKeepsStateWhenExportHangs shuts a daemon down while its
// exporter waits on a backend that never answers: the exporter may use
// only its share of the deadline, so the SLO engine, the golden signals,
// the gate and the store still stop cleanly and the SLO counts are stored.
// Without the shares the exporter spends the whole deadline and the SLO
// engine's stop runs on an expired context.
func TestShutdownKeepsStateWhenExportHangs(t *testing.T) {
	sink := otlptest.NewSink(t) // unused by the exporter: it points at the hanging backend
	dir := t.TempDir()
	cfg := testConfig(t, sink, dir)
	cfg.Export.OTLP.Endpoint = hangingBackend(t)
	cfg.SLOs = []slo.Spec{{Name: "payments-availability", Service: "payments", Objective: 99.9,
		Window: units.Duration(24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	// 20 traces, one payments server span each; every fifth fails
	// (i = 0, 5, 10, 15): 20 requests, 16 good. The error traces are kept
	// and go to the hanging backend.
	sendTraces(t, d, 20, 5, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	err := d.Shutdown(ctx)
	t.Logf("shutdown: %v", err)
	if err == nil || !strings.Contains(err.Error(), "shut down export") {
		t.Errorf("Shutdown = %v, want the export cut short", err)
	}
	// Everything that writes state finished within its own share.
	for _, part := range []string{"shut down slo", "shut down signals", "shut down gate", "close store"} {
		if err != nil && strings.Contains(err.Error(), part) {
			t.Errorf("Shutdown = %v: %q did not finish", err, part)
		}
	}

	db, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	buckets, err := db.LoadSLIBuckets(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var good, total uint64
	for _, b := range buckets {
		if b.SLO == "payments-availability" && b.Group == "" {
			good += b.Good
			total += b.Total
		}
	}
	if good != 16 || total != 20 {
		t.Errorf("stored payments-availability = %d good of %d, want 16 of 20", good, total)
	}
}
