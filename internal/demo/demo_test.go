package demo

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRunShort plays an 8-second schedule of the demo against a real
// daemon on a virtual clock (the traffic is paced by request count, not
// by the wall clock, so a loaded machine changes nothing): the mechanics
// (SDK export, sampling, export file, deploy markers, override, clean-up),
// not the alerts, which need longer phases on the wall clock
// (cmd/tailgate's TestDemo checks those).
func TestRunShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tailgate and sends 240 traces")
	}
	var out bytes.Buffer
	var url string
	sum, err := Run(t.Context(), Options{
		API:      "127.0.0.1:0",
		Schedule: Schedule{Calm: 2 * time.Second, Failure: 3 * time.Second, Recovery: 3 * time.Second},
		RPS:      30,
		Seed:     1,
		Override: true,
		Refresh:  500 * time.Millisecond,
		Out:      &out,
		OnReady:  func(u string) { url = u },
		virtual:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(url) || sum.DashboardURL != url {
		t.Errorf("OnReady got %q, summary %q", url, sum.DashboardURL)
	}
	if sum.Interrupted || sum.Ran != 8*time.Second {
		t.Errorf("interrupted %v after %s, want a whole 8s run", sum.Interrupted, sum.Ran)
	}
	// 30 requests a second for 8 seconds, each one trace.
	if sent := sum.Sent[OK] + sum.Sent[Slow] + sum.Sent[Error]; sent != 240 {
		t.Errorf("sent %d traces in 8s at 30/s, want 240", sent)
	}
	if sum.Sent[Error] == 0 || sum.Kept[Error] != sum.Sent[Error] {
		t.Errorf("error traces kept %d of %d, want all", sum.Kept[Error], sum.Sent[Error])
	}
	if sum.Unknown != 0 || len(sum.Problems) != 0 {
		t.Errorf("unknown kept traces %d, problems %v", sum.Unknown, sum.Problems)
	}
	if sum.Spans.In != float64(sum.SpansSent) {
		t.Errorf("tailgate received %v spans, the fleet sent %d", sum.Spans.In, sum.SpansSent)
	}
	if sum.Spans.Kept+sum.Spans.Dropped != sum.Spans.In {
		t.Errorf("kept %v + dropped %v != received %v: some trace was never decided", sum.Spans.Kept, sum.Spans.Dropped, sum.Spans.In)
	}
	for _, want := range []string{
		"* phase failure: payments 2.4.0 deployed",
		"* phase recovery: payments rolled back to 2.3.1 (deploy marker: rollback)",
		"* override ovr_",
		"* GATE checkout feature: ALLOW (override)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	m := regexp.MustCompile(`data in (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("no data directory in the output")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there (err %v); without --keep it is removed", m[1], err)
	}
}
