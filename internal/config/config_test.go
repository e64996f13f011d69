package config

import (
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/memlimit"
	"github.com/tailgate-sre/tailgate/internal/procs"
)

func TestDefaultsWithoutFile(t *testing.T) {
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.API != "127.0.0.1:8080" || cfg.Ingest.OTLPGRPC != "127.0.0.1:4317" || cfg.Ingest.OTLPHTTP != "127.0.0.1:4318" {
		t.Errorf("defaults must bind 127.0.0.1: %+v %+v", cfg.Server, cfg.Ingest)
	}
	if cfg.Ingest.MaxMessageSize != 16<<20 {
		t.Errorf("max_message_size = %d, want 16MiB", cfg.Ingest.MaxMessageSize)
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
server:
  api: 127.0.0.1:9090
ingest:
  max_message_size: 4MiB
sampling:
  decision_wait: 10s
storage:
  path: /tmp/x
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.API != "127.0.0.1:9090" {
		t.Errorf("api = %q", cfg.Server.API)
	}
	if cfg.Server.ShutdownTimeout.Std() != 30*time.Second {
		t.Errorf("shutdown_timeout default lost: %v", cfg.Server.ShutdownTimeout)
	}
	if cfg.Server.ReadTimeout.Std() != 30*time.Second || cfg.Server.WriteTimeout.Std() != time.Minute || cfg.Server.IdleTimeout.Std() != 2*time.Minute {
		t.Errorf("API timeouts = %v/%v/%v, want the defaults 30s/1m/2m", cfg.Server.ReadTimeout, cfg.Server.WriteTimeout, cfg.Server.IdleTimeout)
	}
	if cfg.Ingest.MaxMessageSize != 4<<20 || cfg.Ingest.OTLPGRPC != "127.0.0.1:4317" {
		t.Errorf("ingest = %+v", cfg.Ingest)
	}
	if cfg.Sampling.DecisionWait.Std() != 10*time.Second {
		t.Errorf("decision_wait = %v", cfg.Sampling.DecisionWait)
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"unknown key", "server:\n  api: 127.0.0.1:1\n  apii: x\n", []string{"[3:3]", "unknown field \"apii\""}},
		{"wrong type", "ingest:\n  max_message_size: [1]\n", []string{"[2:21] max_message_size: invalid size"}},
		{"bad duration", "server:\n  shutdown_timeout: 30\n", []string{"[2:21] shutdown_timeout: invalid duration \"30\""}},
		{"bad memory limit", "server:\n  memory_limit: lots\n", []string{"[2:17] memory_limit: memory limit must be auto, none or a size"}},
		{"small memory limit", "server:\n  memory_limit: 1MiB\n", []string{"line 2: server.memory_limit: must be auto, none or at least 64MiB, got 1MiB"}},
		{"bad gomaxprocs", "server:\n  gomaxprocs: lots\n", []string{`[2:15] gomaxprocs: gomaxprocs must be auto or a number of Ps of at least 1, got "lots"`}},
		{"zero gomaxprocs", "server: {gomaxprocs: 0}\n", []string{`gomaxprocs: gomaxprocs must be auto or a number of Ps of at least 1, got "0"`}},
		{"zero API timeouts", "server:\n  read_timeout: 0s\n  idle_timeout: 0s\n", []string{
			"server.read_timeout: must be positive, got 0s", "server.idle_timeout: must be positive, got 0s",
		}},
		{"anonymous writes with tokens", "auth:\n  allow_anonymous_writes: true\n  tokens: [{name: ci, sha256: \"" + strings.Repeat("ab", 32) + "\", scopes: [read]}]\n", []string{
			"auth.allow_anonymous_writes: applies only when no tokens are configured",
		}},
		{"allowed host with a port", "auth:\n  allowed_hosts: [\"tailgate.lan:8080\"]\n", []string{
			"auth.allowed_hosts[0]: must be a host name without port or scheme",
		}},
		{"require_token without an ingest token", "ingest:\n  require_token: true\nauth:\n  tokens: [{name: ci, sha256: \"" + strings.Repeat("ab", 32) + "\", scopes: [\"gate:check\"]}]\n", []string{
			"line 2: ingest.require_token: no token in auth.tokens has the ingest scope, so every OTLP export would be refused; add one",
		}},
		{"services on a token without the ingest scope", "auth:\n  tokens: [{name: ci, sha256: \"" + strings.Repeat("ab", 32) + "\", scopes: [read], services: [payments]}]\n", []string{
			"auth.tokens[0].services: binds OTLP ingest to services, so it needs the ingest scope in tokens[0].scopes",
		}},
		{"kafka without the write-ahead log", "ingest:\n  kafka: {brokers: [\"kafka:9092\"], topic: otlp_spans, group: tailgate}\nstorage:\n  wal: {enabled: false}\n", []string{
			"ingest.kafka: needs storage.wal.enabled",
		}},
		{"kafka without a group", "ingest:\n  kafka:\n    brokers: [kafka]\n    topic: otlp_spans\n", []string{
			`ingest.kafka.brokers: "kafka" is not host:port`, "ingest.kafka.group: required",
		}},
		{"bad values, all reported", "server:\n  api: nope\nlog:\n  level: loud\n", []string{
			"line 2: server.api: must be host:port, got \"nope\"",
			"line 4: log.level: must be debug, info, warn or error, got \"loud\"",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("Parse accepted invalid config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	if got := Default().Server.MemoryLimit; got != memlimit.Auto() {
		t.Errorf("default server.memory_limit = %v, want auto", got)
	}
	for in, want := range map[string]memlimit.Setting{"2GiB": memlimit.Bytes(2 << 30), "none": memlimit.None(), "auto": memlimit.Auto()} {
		cfg, err := Parse([]byte("server:\n  memory_limit: " + in + "\n"))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if cfg.Server.MemoryLimit != want {
			t.Errorf("memory_limit: %s decoded as %v", in, cfg.Server.MemoryLimit)
		}
	}
}

func TestGOMAXPROCS(t *testing.T) {
	if got := Default().Server.GOMAXPROCS; got != procs.Auto() {
		t.Errorf("default server.gomaxprocs = %v, want auto", got)
	}
	for in, want := range map[string]procs.Setting{"auto": procs.Auto(), "1": procs.Fixed(1), "16": procs.Fixed(16), `"4"`: procs.Fixed(4)} {
		for _, doc := range []string{"server:\n  gomaxprocs: " + in + "\n", "server: {gomaxprocs: " + in + "}\n"} {
			cfg, err := Parse([]byte(doc))
			if err != nil {
				t.Errorf("%q: %v", doc, err)
				continue
			}
			if cfg.Server.GOMAXPROCS != want {
				t.Errorf("%q decoded as %v, want %v", doc, cfg.Server.GOMAXPROCS, want)
			}
		}
	}
}

func TestRequireTokenWithIngestToken(t *testing.T) {
	for _, scope := range []string{"ingest", "admin"} {
		cfg, err := Parse([]byte("ingest:\n  require_token: true\nauth:\n  tokens: [{name: col, sha256: \"" + strings.Repeat("ab", 32) + "\", scopes: [" + scope + "]}]\n"))
		if err != nil {
			t.Errorf("require_token with a token of scope %s: %v", scope, err)
			continue
		}
		if !cfg.Ingest.RequireToken {
			t.Errorf("scope %s: require_token not decoded", scope)
		}
	}
}
