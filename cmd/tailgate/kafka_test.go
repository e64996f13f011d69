package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// kafkaTrace is one record as the Collector's kafka exporter writes it
// with encoding otlp_proto and partition_traces_by_id: one trace's spans,
// keyed by the trace ID. The trace holds 4 checkout entry spans; every
// fifth trace has a failed one.
func kafkaTrace(k int) (rec *kgo.Record, good, total int, failed bool) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	var tid [16]byte
	binary.BigEndian.PutUint64(tid[:8], 0x6b61666b61) // "kafka"
	binary.BigEndian.PutUint64(tid[8:], uint64(k))
	now := time.Now()
	failed = k%5 == 0
	for s := range 4 {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("POST /api/checkout")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetTraceID(tid)
		sp.SetSpanID([8]byte{7, byte(s + 1)})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-20 * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		if failed && s == 0 {
			sp.Status().SetCode(ptrace.StatusCodeError)
		} else {
			good++
		}
	}
	b, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	return &kgo.Record{Key: tid[:], Value: b}, good, 4, failed
}

// TestKafkaFleet is issue 11's Kafka run: two tailgate processes on one
// PostgreSQL consume a six-partition topic as one consumer group; one is
// killed with SIGKILL while records flow, and the other takes its
// partitions. The survivor's SLO totals then equal exactly what was
// produced (no record counted twice, none lost), and every failed trace
// reached the export files of one or the other.
func TestKafkaFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dsn := pg.Database(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "otlp_spans"),
		kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tailgate")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	members := make([]*fleetMember, 2)
	for i := range members {
		ports := freePorts(t, 3)
		m := &fleetMember{name: fmt.Sprint("tg-", i), api: "127.0.0.1:" + strconv.Itoa(ports[0])}
		m.cfg = filepath.Join(dir, m.name+".yaml")
		cfg := fmt.Sprintf(`instance: %s
server: {api: %q}
ingest:
  otlp_grpc: "127.0.0.1:%d"
  otlp_http: "127.0.0.1:%d"
  kafka:
    brokers: [%q]
    topic: otlp_spans
    group: tailgate
    commit_interval: 100ms
    session_timeout: 2s
    settle_margin: 200ms
storage: {path: %q, postgres: %q}
fleet: {heartbeat_interval: 200ms}
sampling: {decision_wait: 1s}
export:
  file: {path: %q}
  queue: {batch_timeout: 50ms}
slo_engine: {flush_interval: 100ms, eval_interval: 200ms}
slos:
  - {name: checkout-availability, service: checkout, objective: 99.9, window: 30d, sli: {kind: availability}}
`, m.name, m.api, ports[1], ports[2], cluster.ListenAddrs()[0], filepath.Join(dir, m.name), dsn, filepath.Join(dir, m.name+".jsonl"))
		if err := os.WriteFile(m.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		m.p = startServe(t, bin, m.cfg, m.api)
		members[i] = m
	}
	defer func() {
		for _, m := range members {
			if m.p != nil && m.p.ProcessState == nil {
				_ = m.p.Process.Kill()
				_ = m.p.Wait()
			}
		}
	}()

	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("otlp_spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	produced, producedGood := 0, 0
	failed := map[string]bool{}
	next := 0
	produce := func(n int) {
		t.Helper()
		var recs []*kgo.Record
		for range n {
			rec, good, total, bad := kafkaTrace(next)
			if bad {
				failed[hex.EncodeToString(rec.Key)] = true
			}
			recs = append(recs, rec)
			produced += total
			producedGood += good
			next++
		}
		if err := producer.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	total := func(m *fleetMember) (good, total int) {
		var st struct{ Good, Total float64 }
		fleetGet(t, m.api, "/api/v1/slos/checkout-availability", &st)
		return int(st.Good), int(st.Total)
	}

	// The group has split the partitions between the two.
	waitFor(t, "the partitions split", func() (int, bool) {
		a, b := scrapeSample(t, members[0].api, "tailgate_kafka_assigned_partitions"), scrapeSample(t, members[1].api, "tailgate_kafka_assigned_partitions")
		return 0, a > 0 && b > 0 && a+b == 6
	})
	produce(300)
	// Both members consume: each has taken records of its partitions.
	for _, m := range members {
		waitFor(t, m.name+" consuming", func() (int, bool) {
			return 0, scrapeSample(t, m.api, "tailgate_kafka_records_total") > 0
		})
	}
	waitFor(t, "counts stored", func() (int, bool) {
		_, n := total(members[1])
		return 0, n > 0
	})
	// Kill one mid-run: what it counted and stored stays counted, what it
	// had not stored is counted by its successor, from the offsets it
	// committed.
	dead := members[0]
	produce(100)
	if err := dead.p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = dead.p.Wait()
	produce(200)

	alive := members[1]
	waitFor(t, "the survivor's exact totals", func() (int, bool) {
		good, n := total(alive)
		if n > produced {
			t.Fatalf("total %d > %d produced: records counted twice", n, produced)
		}
		return 0, n == produced && good == producedGood
	})
	waitFor(t, "every failed trace exported", func() (int, bool) {
		got := map[string]bool{}
		for _, m := range members {
			exportedTraceIDs(t, filepath.Join(dir, m.name+".jsonl"), got)
		}
		for id := range failed {
			if !got[id] {
				return 0, false
			}
		}
		return 0, true
	})
	// A graceful stop of the survivor leaves the group and exits 0.
	if err := alive.p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := alive.p.Wait(); err != nil {
		t.Errorf("survivor's shutdown: %v", err)
	}
	// Still exact once both are gone (the last flush did not add twice).
	if good, n := storedTotals(t, dsn); n != produced || good != producedGood {
		t.Errorf("stored totals good/total = %d/%d, want %d/%d", good, n, producedGood, produced)
	}
}

// exportedTraceIDs adds the trace IDs in an export file (OTLP JSON lines)
// to ids. A last line cut by SIGKILL is skipped.
func exportedTraceIDs(t *testing.T, path string, ids map[string]bool) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var u ptrace.JSONUnmarshaler
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		td, err := u.UnmarshalTraces(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					id := sp.TraceID()
					ids[hex.EncodeToString(id[:])] = true
				}
			}
		}
	}
}

// scrapeSample reads one unlabelled sample (a counter or a gauge) from
// /metrics; 0 when it cannot.
func scrapeSample(t *testing.T, api, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + api + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// storedTotals sums the fleet's stored SLI counts straight from
// PostgreSQL, an account independent of tailgate's reads.
func storedTotals(t *testing.T, dsn string) (good, total int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), `SELECT COALESCE(SUM(good), 0), COALESCE(SUM(total), 0) FROM slo_buckets WHERE slo = 'checkout-availability'`).Scan(&good, &total); err != nil {
		t.Fatal(err)
	}
	return good, total
}
