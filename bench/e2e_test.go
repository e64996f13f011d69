package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/daemon"
	"github.com/tailgate-sre/tailgate/internal/procs"
	"github.com/tailgate-sre/tailgate/internal/store/pgtest"
)

// loadgenEnv, when set to a JSON LoadConfig, turns the test binary into
// the load generator: TestMain runs the load and prints a LoadResult.
const loadgenEnv = "TAILGATE_BENCH_LOADGEN"

func TestMain(m *testing.M) {
	if spec := os.Getenv(loadgenEnv); spec != "" {
		os.Exit(loadgenMain(spec))
	}
	os.Exit(pgtest.Main(m, &pg))
}

func loadgenMain(spec string) int {
	var cfg LoadConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	res, err := RunLoad(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// options are the load's knobs, from TAILGATE_BENCH_* variables so that
// both benchmarks always see the same load.
type options struct {
	spans, rate, conns, tracesPerReq, buffered int
	// cpuProfile, from TAILGATE_BENCH_CPUPROFILE, is where BenchmarkE2E
	// writes a CPU profile of each iteration's warm load (the path gets
	// the iteration's number appended); empty writes none.
	cpuProfile string
}

func loadOptions(tb testing.TB) options {
	get := func(name string, def int) int {
		v := os.Getenv("TAILGATE_BENCH_" + name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			tb.Fatalf("TAILGATE_BENCH_%s=%q: want a non-negative integer", name, v)
		}
		return n
	}
	return options{
		spans:        get("SPANS", 600_000),
		rate:         get("RATE", 30_000),
		conns:        get("CONNS", 4),
		tracesPerReq: get("TRACES_PER_REQUEST", 50),
		buffered:     get("BUFFERED", 180_000),
		cpuProfile:   os.Getenv("TAILGATE_BENCH_CPUPROFILE"),
	}
}

// profileCPU starts a CPU profile into path.seed, or nothing when path is
// empty, and returns what stops it.
func profileCPU(tb testing.TB, path string, seed uint64) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, seed))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	}
}

// spawnLoad runs the load generator in a child process, so that its CPU
// time is not the measured process's.
func spawnLoad(tb testing.TB, cfg LoadConfig) LoadResult {
	tb.Helper()
	spec, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loadgenEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("loadgen: %v\n%s", err, stderr.String())
	}
	var res LoadResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		tb.Fatalf("loadgen output %q: %v", stdout.String(), err)
	}
	return res
}

// figures are one iteration's results.
type figures struct {
	spansPerCPUSec  float64 // accepted spans / process CPU seconds (the warm load, where there is one)
	freshPerCPUSec  float64 // the same for the first load of a fresh process (NaN when not measured)
	freshCPU        time.Duration
	heapPerBuffered float64 // heap bytes after GC per buffered span
	rssPerBuffered  float64 // resident bytes per buffered span
	cpu, wall       time.Duration
	spans, buffered int64
	retries         int64
	// switchesPerReq is the measured process's context switches per
	// accepted request of the warm load: each is a thread put to sleep or
	// preempted, which on this kind of VM costs more than most requests'
	// own work.
	switchesPerReq float64
}

func report(b *testing.B, runs []figures) {
	med := func(f func(figures) float64) float64 {
		var v []float64
		for _, r := range runs {
			if x := f(r); !math.IsNaN(x) {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			return math.NaN()
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i, r := range runs {
		b.Logf("run %d: fresh %v CPU: %.0f spans/cpu-s; warm %d spans in %v wall, %v CPU: %.0f spans/cpu-s (%d retried requests, %.1f context switches per request); %d buffered: %.0f heap B/span, %.0f RSS B/span",
			i+1, r.freshCPU, r.freshPerCPUSec, r.spans, r.wall.Round(time.Millisecond), r.cpu, r.spansPerCPUSec, r.retries, r.switchesPerReq, r.buffered, r.heapPerBuffered, r.rssPerBuffered)
	}
	b.ReportMetric(med(func(f figures) float64 { return f.freshPerCPUSec }), "fresh-spans/cpu-s")
	b.ReportMetric(med(func(f figures) float64 { return f.spansPerCPUSec }), "warm-spans/cpu-s")
	b.ReportMetric(med(func(f figures) float64 { return f.heapPerBuffered }), "B/buffered-span")
	b.ReportMetric(med(func(f figures) float64 { return f.rssPerBuffered }), "rss-B/buffered-span")
	b.ReportMetric(med(func(f figures) float64 { return f.switchesPerReq }), "switches/request")
}

// benchConfig is tailgate serve's default config plus the two example
// SLOs of examples/tailgate.yaml (on the generated "checkout" service), on
// loopback ports chosen by the kernel. Golden signals are on by default;
// no exporter is configured, as in the default config.
func benchConfig(tb testing.TB) config.Config {
	tb.Helper()
	cfg, err := config.Parse([]byte(`
server: {api: "127.0.0.1:0"}
ingest: {otlp_grpc: "127.0.0.1:0", otlp_http: "127.0.0.1:0"}
log: {level: warn}
slos:
  - name: checkout-availability
    service: checkout
    objective: 99.9
    window: 30d
    sli: {kind: availability}
  - name: checkout-latency
    service: checkout
    objective: 99
    window: 28d
    sli: {kind: latency, threshold: 300ms, filter: {http.route: /api/checkout}}
`))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Storage.Path = tb.TempDir()
	return cfg
}

// counter sums the samples of the named counter in d's registry.
func counter(tb testing.TB, d *daemon.Daemon, name string) float64 {
	tb.Helper()
	mfs, err := d.Registry().Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// waitFor polls cond every 250ms until it holds or 2 minutes pass. The
// period is coarse because polling the daemon's registry costs CPU in the
// measured process.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// liveHeap returns the bytes of live heap objects after a full GC.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC() // the first may leave finalizer-held objects
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func cpuSelf(tb testing.TB) time.Duration {
	d, err := ProcCPU("self")
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func switches(tb testing.TB, pid string) int64 {
	n, err := ProcSwitches(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func rss(tb testing.TB, pid string) int64 {
	n, err := ProcRSS(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkE2E runs tailgate's daemon in this process behind OTLP/gRPC on
// 127.0.0.1 and drives it from a load-generator process. Each iteration
// starts a fresh daemon and has two phases:
//
//  1. throughput: TAILGATE_BENCH_SPANS spans of 10-span traces at
//     TAILGATE_BENCH_RATE spans/s, twice on one daemon; the process CPU time
//     from just before a load until every trace is decided gives
//     spans/cpu-s: of the first load (fresh-spans/cpu-s: every page the
//     daemon touches is new to it, and a first touch costs a page fault)
//     and of the second (warm-spans/cpu-s, the steady state a long-running
//     daemon is in);
//  2. memory: TAILGATE_BENCH_BUFFERED spans of traces without their roots,
//     which therefore stay buffered; live heap after GC minus the same
//     before the phase, per buffered span, gives B/buffered-span.
//
// Run it with -benchtime 1x (one iteration takes about a minute);
// -count 3 repeats it. docs/benchmarks.md has the figures.
func BenchmarkE2E(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark: takes about a minute per iteration")
	}
	opts := loadOptions(b)
	b.ReportAllocs()
	var runs []figures
	for b.Loop() {
		runs = append(runs, runTailgate(b, opts, uint64(len(runs)+1)))
	}
	report(b, runs)
}

// startDaemon starts a fresh daemon with benchConfig and returns it and
// its shutdown.
func startDaemon(b *testing.B) (*daemon.Daemon, func()) {
	return startDaemonWith(b, func(*config.Config) {})
}

// BenchmarkE2EWAL measures what the write-ahead log costs: the throughput
// phase of BenchmarkE2E with the log (the default) and without it
// (storage.wal.enabled: false), alternating within each iteration (and
// which goes first) so that the machine's drift hits both alike. It reports both medians and
// the cost: 1 - with/without, in percent of spans per CPU-second.
func BenchmarkE2EWAL(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	opts := loadOptions(b)
	var with, without []float64
	for b.Loop() {
		seed := uint64(len(with) + 1)
		order := []bool{true, false}
		if seed%2 == 0 { // neither setting always runs first
			order = []bool{false, true}
		}
		for _, on := range order {
			f := throughput(b, opts, seed, func(c *config.Config) { c.Storage.WAL.Enabled = on })
			if on {
				with = append(with, f.spansPerCPUSec)
			} else {
				without = append(without, f.spansPerCPUSec)
			}
			b.Logf("run %d, wal %v: %d spans, %.2fs CPU: %.0f spans/cpu-s, %.1f context switches per request", seed, on, f.spans, f.cpu.Seconds(), f.spansPerCPUSec, f.switchesPerReq)
		}
	}
	mw, mo := median(with), median(without)
	b.ReportMetric(mw, "wal-spans/cpu-s")
	b.ReportMetric(mo, "nowal-spans/cpu-s")
	b.ReportMetric(100*(1-mw/mo), "wal-cost-%")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// throughput runs one load of BenchmarkE2E's throughput phase on a fresh
// daemon whose config edit changed.
func throughput(b *testing.B, opts options, seed uint64, edit func(*config.Config)) figures {
	var f figures
	d, stop := startDaemonWith(b, edit)
	defer stop()
	res, cpu, sw := decideLoad(b, d, opts, seed)
	f.cpu, f.spans, f.switchesPerReq = cpu, res.Spans, sw
	f.spansPerCPUSec = float64(res.Spans) / f.cpu.Seconds()
	return f
}

// decideLoad sends one throughput load to d and returns it with the CPU
// time this process used from just before it until every trace was
// decided, and its context switches per accepted request.
func decideLoad(b *testing.B, d *daemon.Daemon, opts options, seed uint64) (LoadResult, time.Duration, float64) {
	runtime.GC() // collect earlier garbage outside the measurement
	cpu0, sw0 := cpuSelf(b), switches(b, "self")
	res := spawnLoad(b, LoadConfig{Addr: d.GRPCAddr(), Spans: opts.spans, Rate: opts.rate, Conns: opts.conns, TracesPerRequest: opts.tracesPerReq, Seed: seed})
	waitFor(b, "every trace decided", func() bool {
		intake, buffered := d.Pending()
		return intake+buffered == 0
	})
	return res, cpuSelf(b) - cpu0, perRequest(switches(b, "self")-sw0, res)
}

// perRequest divides n by res's accepted requests.
func perRequest(n int64, res LoadResult) float64 {
	return float64(n) / float64(max(res.Requests, 1))
}

func startDaemonWith(b *testing.B, edit func(*config.Config)) (*daemon.Daemon, func()) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := benchConfig(b)
	edit(&cfg)
	d, err := daemon.New(ctx, cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	// As tailgate serve does: GOMAXPROCS follows server.gomaxprocs.
	stopProcs := procs.Start(cfg.Server.GOMAXPROCS, log)
	return d, func() {
		defer stopProcs()
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := d.Shutdown(sctx); err != nil {
			b.Error(err)
		}
	}
}

// runTailgate runs the memory phase on one fresh daemon, so that no trace
// buffers recycled from earlier traffic hide the cost, then the throughput
// phase on another.
func runTailgate(b *testing.B, opts options, seed uint64) figures {
	var f figures
	d, stop := startDaemon(b)
	heap0, rss0 := liveHeap(), rss(b, "self")
	res := spawnLoad(b, LoadConfig{Addr: d.GRPCAddr(), Spans: opts.buffered, Conns: opts.conns, TracesPerRequest: opts.tracesPerReq, NoRoots: true, Seed: seed + 1000})
	waitFor(b, "memory-phase spans buffered", func() bool {
		intake, buffered := d.Pending()
		return intake == 0 && buffered >= res.Spans
	})
	heap1, rss1 := liveHeap(), rss(b, "self")
	_, f.buffered = d.Pending()
	f.heapPerBuffered = float64(heap1-heap0) / float64(f.buffered)
	f.rssPerBuffered = float64(rss1-rss0) / float64(f.buffered)
	if seed > 1 {
		// Later iterations reuse the pages the earlier daemons' heaps left
		// in the process, so only the first one's RSS growth means anything.
		f.rssPerBuffered = math.NaN()
	}
	stop()

	d, stop = startDaemon(b)
	defer stop()
	res, f.freshCPU, _ = decideLoad(b, d, opts, seed)
	f.freshPerCPUSec = float64(res.Spans) / f.freshCPU.Seconds()
	total := res.Spans
	stopProfile := profileCPU(b, opts.cpuProfile, seed)
	res, f.cpu, f.switchesPerReq = decideLoad(b, d, opts, seed+2000) // other trace IDs, the same mix
	stopProfile()
	total += res.Spans
	f.spans, f.wall, f.retries = res.Spans, res.Wall, res.Retries
	f.spansPerCPUSec = float64(res.Spans) / f.cpu.Seconds()
	// With 4 connections the templates cycle every 1600 traces, of which
	// 49 are errors (k%33 == 0), 32 slow (k%50 == 7) and 1 both: 5% kept
	// by rule, plus 5% of the other 95%: about 9.75% in all.
	b.Logf("tailgate kept %.2f%% of %d spans (expected about 9.75%% with 4 connections)",
		100*counter(b, d, "tailgate_sampler_spans_kept_total")/float64(total), total)
	return f
}

// collectorDecisionWait is the Collector's decision_wait: tailgate's
// default sampling.decision_wait (30s).
const collectorDecisionWait = 30 * time.Second

// collectorConfig is the Collector's config: OTLP/gRPC in, tail sampling
// with tailgate's default policy (keep errors, keep traces over 1s, 5% of
// the rest), nop out, internal telemetry at its default level.
const collectorConfig = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
processors:
  tail_sampling:
    decision_wait: %s
    num_traces: 500000
    expected_new_traces_per_sec: 5000
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: 1000}
      - name: rest
        type: probabilistic
        probabilistic: {sampling_percentage: 5}
exporters:
  nop:
extensions:
  pprof:
    endpoint: 127.0.0.1:%d
service:
  extensions: [pprof]
  telemetry:
    logs: {level: warn}
    metrics:
      readers:
        - pull:
            exporter:
              prometheus: {host: 127.0.0.1, port: %d}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [nop]
`

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// collectorHeap forces a GC in the Collector through its pprof extension
// and returns HeapAlloc from the runtime.MemStats of the heap profile.
func collectorHeap(tb testing.TB, pprofPort int) int64 {
	tb.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", pprofPort))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "# HeapAlloc = "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no HeapAlloc in the Collector's heap profile")
	return 0
}

// BenchmarkCollector runs the same two phases as BenchmarkE2E against the
// OpenTelemetry Collector built in bench/collector (TAILGATE_BENCH_COLLECTOR
// names another binary), reading its CPU time and RSS from /proc/<pid> and
// its heap after a forced GC from its pprof extension. The throughput
// phase's two loads each end decision_wait (30s) plus 3s after the last
// span, the Collector's bound for deciding every trace; the memory phase
// measures 2s after the last span was accepted.
func BenchmarkCollector(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	bin := collectorBinary(b)
	opts := loadOptions(b)
	b.ReportAllocs()
	var runs []figures
	for b.Loop() {
		runs = append(runs, runCollector(b, bin, opts, uint64(len(runs)+1)))
	}
	report(b, runs)
}

// collectorBinary returns the Collector to measure
// (TAILGATE_BENCH_COLLECTOR, else the one bench/collector/run.sh builds),
// or skips the benchmark when there is none.
func collectorBinary(b *testing.B) string {
	bin := os.Getenv("TAILGATE_BENCH_COLLECTOR")
	if bin == "" {
		bin = filepath.Join("collector", "otelcol-bench")
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skipf("no Collector binary (%v): build it with bench/collector/run.sh", err)
	}
	return bin
}

// startCollector starts the Collector binary with collectorConfig on free
// loopback ports and returns its pid, OTLP/gRPC address, pprof port and
// stop function.
func startCollector(b *testing.B, bin string) (pid, addr string, pprofPort int, stop func()) {
	grpcPort, pprofPort, metricsPort := freePort(b), freePort(b), freePort(b)
	cfgPath := filepath.Join(b.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, collectorConfig, grpcPort, collectorDecisionWait, pprofPort, metricsPort), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if n := os.Getenv("TAILGATE_BENCH_COLLECTOR_GOMAXPROCS"); n != "" {
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+n) // what the Collector would do on that many Ps
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	addr = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	waitFor(b, "the Collector to listen", func() bool {
		select {
		case <-exited:
			b.Fatal("the Collector exited")
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return strconv.Itoa(cmd.Process.Pid), addr, pprofPort, stop
}

// runCollector runs the memory phase on one fresh Collector and the
// throughput phase on another, like runTailgate.
func runCollector(b *testing.B, bin string, opts options, seed uint64) figures {
	var f figures
	pid, addr, pprofPort, stop := startCollector(b, bin)
	heap0, rss0 := collectorHeap(b, pprofPort), rss(b, pid)
	res := spawnLoad(b, LoadConfig{Addr: addr, Spans: opts.buffered, Conns: opts.conns, TracesPerRequest: opts.tracesPerReq, NoRoots: true, Seed: seed + 1000})
	time.Sleep(2 * time.Second) // the processor's intake is asynchronous; no event says it is done
	heap1, rss1 := collectorHeap(b, pprofPort), rss(b, pid)
	f.buffered = res.Spans
	f.heapPerBuffered = float64(heap1-heap0) / float64(f.buffered)
	f.rssPerBuffered = float64(rss1-rss0) / float64(f.buffered)
	stop()

	pid, addr, _, stop = startCollector(b, bin)
	defer stop()
	cpu := func() time.Duration {
		d, err := ProcCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	load := func(seed uint64) (LoadResult, time.Duration, float64) {
		cpu0, sw0 := cpu(), switches(b, pid)
		res := spawnLoad(b, LoadConfig{Addr: addr, Spans: opts.spans, Rate: opts.rate, Conns: opts.conns, TracesPerRequest: opts.tracesPerReq, Seed: seed})
		time.Sleep(collectorDecisionWait + 3*time.Second) // no event says "all decided"
		return res, cpu() - cpu0, perRequest(switches(b, pid)-sw0, res)
	}
	res, f.freshCPU, _ = load(seed)
	f.freshPerCPUSec = float64(res.Spans) / f.freshCPU.Seconds()
	res, f.cpu, f.switchesPerReq = load(seed + 2000)
	f.spans, f.wall, f.retries = res.Spans, res.Wall, res.Retries
	f.spansPerCPUSec = float64(res.Spans) / f.cpu.Seconds()
	return f
}
