package export

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestOldest checks the exporter's watermark: it is the hand-over time of
// the oldest request not finished, whether it waits or is being sent, and
// it moves only when that request is finished.
func TestOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{hold: make(chan struct{})} // the backend hangs
		e, _ := startFake(t, testConfig("127.0.0.1:1"), fc)
		if _, ok := e.Oldest(); ok {
			t.Fatal("Oldest of an empty exporter says something is held")
		}
		var gen spanGen
		t0 := time.Now()
		req, _ := gen.request(t, 30)
		if err := e.Export(t.Context(), req, 30); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()             // the first batch is in flight, held by the backend
		time.Sleep(5 * time.Second) // within one attempt's timeout
		req, _ = gen.request(t, 10)
		if err := e.Export(t.Context(), req, 10); err != nil {
			t.Fatal(err)
		}
		if at, ok := e.Oldest(); !ok || !at.Equal(t0) {
			t.Fatalf("Oldest with the first batch in flight = %v %v, want %v", at, ok, t0)
		}
		close(fc.hold)
		time.Sleep(time.Second) // past the batch timeout of the second request
		synctest.Wait()
		if _, ok := e.Oldest(); ok {
			t.Fatal("Oldest after every batch was sent says something is held")
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
