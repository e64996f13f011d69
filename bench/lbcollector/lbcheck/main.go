// Command lbcheck runs the loadbalancing check of docs/scale.md: two real
// tailgate processes behind a real Collector whose loadbalancing exporter
// routes by trace ID. Three services, each its own OpenTelemetry SDK
// (so the spans of one trace reach the Collector in different export
// requests), send traces through the Collector; each tailgate keeps every
// trace and writes it to its export file. The check passes when every
// trace's spans are in one instance's file, all of them, and both
// instances got traces.
//
//	lbcheck -tailgate PATH -collector PATH [-traces N]
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func main() {
	tailgate := flag.String("tailgate", "", "the tailgate binary")
	collector := flag.String("collector", "", "the otelcol-lb binary")
	traces := flag.Int("traces", 2000, "traces to send")
	routing := flag.String("routing-key", "traceID", "the exporter's routing_key (service shows the check failing)")
	flag.Parse()
	if *tailgate == "" || *collector == "" {
		fmt.Fprintln(os.Stderr, "usage: lbcheck -tailgate PATH -collector PATH [-traces N]")
		os.Exit(2)
	}
	if err := run(*tailgate, *collector, *traces, *routing); err != nil {
		fmt.Fprintln(os.Stderr, "lbcheck: FAIL:", err)
		os.Exit(1)
	}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func start(dir, name string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	return p, p.cmd.Start()
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready in 60s", url)
}

func run(tailgateBin, collectorBin string, n int, routing string) error {
	dir, err := os.MkdirTemp("", "lbcheck-")
	if err != nil {
		return err
	}
	fmt.Println("lbcheck: working in", dir)
	var instances []string
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	for i := range 2 {
		name := fmt.Sprint("tg-", i)
		api, grpc, httpPort := freePort(), freePort(), freePort()
		cfg := fmt.Sprintf(`instance: %s
server: {api: "127.0.0.1:%d"}
ingest: {otlp_grpc: "127.0.0.1:%d", otlp_http: "127.0.0.1:%d"}
storage: {path: %q}
sampling:
  decision_wait: 5s
  rules: [{name: all, keep: true}]
export:
  file: {path: %q}
  queue: {batch_timeout: 50ms}
log: {level: warn}
`, name, api, grpc, httpPort, filepath.Join(dir, name), filepath.Join(dir, name+".jsonl"))
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return err
		}
		p, err := start(dir, name, tailgateBin, "serve", "--config", path)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		if err := waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/readyz", api)); err != nil {
			return fmt.Errorf("%s: %w (see %s)", name, err, p.log)
		}
		instances = append(instances, fmt.Sprintf("127.0.0.1:%d", grpc))
	}
	front := freePort()
	colCfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:%d"}
exporters:
  loadbalancing:
    routing_key: %s
    protocol:
      otlp:
        tls: {insecure: true}
    resolver:
      static:
        hostnames: [%s]
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], exporters: [loadbalancing]}
`, front, routing, strings.Join(instances, ", "))
	colPath := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(colPath, []byte(colCfg), 0o600); err != nil {
		return err
	}
	col, err := start(dir, "otelcol", collectorBin, "--config", "file:"+colPath)
	if err != nil {
		return err
	}
	procs = append(procs, col)
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", front)); err != nil {
		return fmt.Errorf("collector: %w (see %s)", err, col.log)
	}

	sent, spans, err := send(fmt.Sprintf("127.0.0.1:%d", front), n)
	if err != nil {
		return err
	}
	fmt.Printf("lbcheck: sent %d traces, %d spans, through the Collector to %s\n", len(sent), spans, strings.Join(instances, " and "))
	// Let each tailgate decide the last traces (decision_wait 5s) and
	// export them.
	time.Sleep(8 * time.Second)
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	procs = nil

	where := map[string]map[int]int{} // trace -> instance -> spans
	for i := range instances {
		if err := readExport(filepath.Join(dir, fmt.Sprint("tg-", i, ".jsonl")), i, where); err != nil {
			return err
		}
	}
	perInstance := make([]int, len(instances))
	split, incomplete, missing := 0, 0, 0
	for id, want := range sent {
		got := where[id]
		if len(got) == 0 {
			missing++
			continue
		}
		if len(got) > 1 {
			split++
		}
		total := 0
		for inst, k := range got {
			total += k
			perInstance[inst]++
		}
		if total != want {
			incomplete++
		}
	}
	fmt.Printf("lbcheck: traces per instance %v; split across instances %d; missing %d; with spans missing %d\n", perInstance, split, missing, incomplete)
	if split > 0 || missing > 0 || incomplete > 0 || perInstance[0] == 0 || perInstance[1] == 0 {
		return fmt.Errorf("traces were not routed whole to one instance each")
	}
	fmt.Println("lbcheck: PASS: every trace reached one tailgate whole")
	return nil
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening in 60s", addr)
}

// send sends n traces of 3 spans, one per service (frontend -> checkout ->
// payments), every tenth failed, each service through its own SDK.
func send(addr string, n int) (map[string]int, int, error) {
	ctx := context.Background()
	var tps []*sdktrace.TracerProvider
	var tracers []trace.Tracer
	for _, svc := range []string{"payments", "checkout", "frontend"} {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, 0, err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", svc))),
			sdktrace.WithBatcher(exp, sdktrace.WithBlocking(), sdktrace.WithBatchTimeout(100*time.Millisecond)))
		tps = append(tps, tp)
		tracers = append(tracers, tp.Tracer("lbcheck"))
	}
	sent := map[string]int{}
	for i := range n {
		cctx, root := tracers[2].Start(ctx, "GET /checkout", trace.WithSpanKind(trace.SpanKindServer))
		c2, mid := tracers[1].Start(cctx, "POST /api/checkout", trace.WithSpanKind(trace.SpanKindServer))
		_, leaf := tracers[0].Start(c2, "POST /charge", trace.WithSpanKind(trace.SpanKindServer))
		if i%10 == 0 {
			leaf.SetStatus(codes.Error, "declined")
		}
		leaf.End()
		mid.End()
		root.End()
		id := root.SpanContext().TraceID()
		sent[hex.EncodeToString(id[:])] = 3
	}
	for _, tp := range tps {
		if err := tp.Shutdown(ctx); err != nil {
			return nil, 0, err
		}
	}
	return sent, 3 * n, nil
}

func readExport(path string, inst int, where map[string]map[int]int) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var u ptrace.JSONUnmarshaler
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		td, err := u.UnmarshalTraces(line)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					id := sp.TraceID()
					k := hex.EncodeToString(id[:])
					if where[k] == nil {
						where[k] = map[int]int{}
					}
					where[k][inst]++
				}
			}
		}
	}
}
