// Package config reads tailgate's YAML config file: strict decoding (unknown
// keys and wrong types are errors with their line), defaults, then every
// section's validation reported at once, each problem naming its key and,
// where it can be found, its line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/export"
	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/ingest"
	"github.com/tailgate-sre/tailgate/internal/memlimit"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/procs"
	"github.com/tailgate-sre/tailgate/internal/sampler"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is the whole config file. The key names follow DESIGN.md.
type Config struct {
	Server    Server            `yaml:"server"`
	Log       Log               `yaml:"log"`
	Ingest    ingest.Config     `yaml:"ingest"`
	Sampling  sampler.Config    `yaml:"sampling"`
	Export    export.Config     `yaml:"export"`
	Signals   signals.Config    `yaml:"signals"`
	Storage   Storage           `yaml:"storage"`
	SLOs      []slo.Spec        `yaml:"slos"`
	SLOFiles  []string          `yaml:"slo_files"`
	SLOEngine slo.EngineConfig  `yaml:"slo_engine"`
	Notify    notify.Config     `yaml:"notify"`
	Policies  []gate.PolicySpec `yaml:"policies"`
	Auth      auth.Config       `yaml:"auth"`
	// Instance names this tailgate in a fleet (default: the host name).
	Instance string `yaml:"instance"`
	// Cell names the cell (a set of instances with its own store) in API
	// answers, metrics and notifications.
	Cell  string `yaml:"cell"`
	Fleet Fleet  `yaml:"fleet"`
	// Flags are feature flags served over OFREP; KillSwitches bounds
	// their automatic flips.
	Flags        []flags.Config         `yaml:"flags"`
	KillSwitches flags.KillSwitchConfig `yaml:"kill_switches"`
	// Incidents configures incidents declared from pages.
	Incidents incident.Config `yaml:"incidents"`
	// Oncall names the rotations whose load the on-call report measures.
	Oncall incident.OncallConfig `yaml:"oncall"`
}

// Server configures the HTTP API listener and the process lifecycle.
type Server struct {
	// API is the listen address of the HTTP API, dashboard, /metrics,
	// /healthz and /readyz.
	API string `yaml:"api"`
	// ShutdownTimeout bounds a graceful shutdown: stop accepting, decide
	// buffered traces, flush exports.
	ShutdownTimeout units.Duration `yaml:"shutdown_timeout"`
	// ReadTimeout bounds reading one API request, headers and body
	// (default 30s), so a client that trickles its request cannot hold a
	// connection.
	ReadTimeout units.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds handling one API request and writing its answer
	// (default 60s).
	WriteTimeout units.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive API connection idle that long
	// (default 2m).
	IdleTimeout units.Duration `yaml:"idle_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit: auto (90% of the
	// cgroup's limit when there is one), none, or a size. GOMEMLIMIT, when
	// set, wins. Ingest refuses new requests while the live heap is above
	// 90% of it.
	MemoryLimit memlimit.Setting `yaml:"memory_limit"`
	// GOMAXPROCS is how many Ps the Go scheduler runs goroutines on:
	// auto (the default: as few as the load needs, up to the runtime's
	// default) or a number. GOMAXPROCS in the environment wins. tailgate
	// serve applies it; it is the process's, not a daemon's.
	GOMAXPROCS procs.Setting `yaml:"gomaxprocs"`
}

// Log configures the process log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Storage says where state is kept.
type Storage struct {
	// Path is the directory of the embedded SQLite store and of the local
	// state every mode keeps (the write-ahead log, the decision cache,
	// the export queue).
	Path string `yaml:"path"`
	// WAL is the write-ahead log of accepted requests' counts.
	WAL WAL `yaml:"wal"`
	// Postgres, a connection string (postgres://user@host:5432/db?sslmode=...),
	// selects the fleet store: every instance of the fleet shares it
	// (docs/scale.md). PostgresFile names a file holding the connection
	// string instead, for a secret; not both.
	Postgres     string `yaml:"postgres"`
	PostgresFile string `yaml:"postgres_file"`
}

// PostgresDSN returns the fleet store's connection string ("" for the
// embedded store), reading PostgresFile if that is how it is given.
func (s Storage) PostgresDSN() (string, error) {
	if s.PostgresFile == "" {
		return s.Postgres, nil
	}
	b, err := os.ReadFile(s.PostgresFile)
	if err != nil {
		return "", fmt.Errorf("storage.postgres_file: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("storage.postgres_file: %s is empty", s.PostgresFile)
	}
	return dsn, nil
}

// Fleet configures an instance's part in a fleet on the fleet store.
type Fleet struct {
	// HeartbeatInterval is how often the instance records its heartbeat
	// and tries or renews the leader lock (default 2s).
	HeartbeatInterval units.Duration `yaml:"heartbeat_interval"`
}

// WAL configures the write-ahead log (docs/operations.md).
type WAL struct {
	// Enabled logs every accepted request before it is acknowledged, so
	// a crash loses no acknowledged count (default true).
	Enabled bool `yaml:"enabled"`
	// FsyncInterval is the group commit's period: what a power loss may
	// lose (default 1s; 0 fsyncs before every acknowledgement).
	FsyncInterval units.Duration `yaml:"fsync_interval"`
	// MaxBytes bounds the log; beyond it ingest pushes back (default 1GiB).
	MaxBytes units.Bytes `yaml:"max_bytes"`
}

// Default returns the configuration used without a config file.
func Default() Config {
	return Config{
		Server: Server{API: "127.0.0.1:8080", ShutdownTimeout: units.Duration(30 * time.Second),
			ReadTimeout: units.Duration(30 * time.Second), WriteTimeout: units.Duration(time.Minute), IdleTimeout: units.Duration(2 * time.Minute),
			MemoryLimit: memlimit.Auto(), GOMAXPROCS: procs.Auto()},
		Log:       Log{Level: "info", Format: "text"},
		Ingest:    ingest.DefaultConfig(),
		Sampling:  sampler.DefaultConfig(),
		Export:    export.DefaultConfig(),
		Signals:   signals.DefaultConfig(),
		Storage:   Storage{Path: "./tailgate-data", WAL: WAL{Enabled: true, FsyncInterval: units.Duration(time.Second), MaxBytes: 1 << 30}},
		Auth:      auth.DefaultConfig(),
		Fleet:     Fleet{HeartbeatInterval: units.Duration(2 * time.Second)},
		SLOEngine: slo.DefaultEngineConfig(),
		Notify:    notify.DefaultConfig(),

		KillSwitches: flags.KillSwitchConfig{MaxFlipsPerHour: flags.DefaultMaxFlipsPerHour},
		Incidents:    incident.DefaultConfig(),
	}
}

// Load reads and validates the config file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a config file's contents on top of Default.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	// Sections replace their defaults key by key, but a list given in the
	// file replaces the default list whole (the rules in particular).
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.Strict()); err != nil {
			return Config{}, errors.New(yaml.FormatError(err, false, true))
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, annotateLines(data, err)
	}
	return cfg, nil
}

// Validate checks every section and returns all problems at once, each
// prefixed with its full key path.
func (c *Config) Validate() error {
	var errs []error
	add := func(section string, err error) {
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				errs = append(errs, fmt.Errorf("%s.%s", section, line))
			}
		}
	}
	if err := checkAddr(c.Server.API); err != nil {
		errs = append(errs, fmt.Errorf("server.api: %v", err))
	}
	for _, d := range []struct {
		key string
		v   units.Duration
	}{
		{"shutdown_timeout", c.Server.ShutdownTimeout},
		{"read_timeout", c.Server.ReadTimeout},
		{"write_timeout", c.Server.WriteTimeout},
		{"idle_timeout", c.Server.IdleTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("server.%s: must be positive, got %s", d.key, d.v))
		}
	}
	if err := c.Server.MemoryLimit.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("server.memory_limit: %w", err))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: must be debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: must be text or json, got %q", c.Log.Format))
	}
	if c.Storage.Path == "" {
		errs = append(errs, errors.New("storage.path: must not be empty"))
	}
	if c.Storage.Postgres != "" && c.Storage.PostgresFile != "" {
		errs = append(errs, errors.New("storage: postgres and postgres_file are both set; keep one"))
	}
	if c.Storage.PostgresFile != "" {
		if _, err := c.Storage.PostgresDSN(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Fleet.HeartbeatInterval < 0 || c.Fleet.HeartbeatInterval != 0 && c.Fleet.HeartbeatInterval.Std() < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("fleet.heartbeat_interval: must be at least 100ms, got %s", c.Fleet.HeartbeatInterval))
	}
	if c.Storage.WAL.FsyncInterval < 0 {
		errs = append(errs, fmt.Errorf("storage.wal.fsync_interval: must not be negative, got %s", c.Storage.WAL.FsyncInterval))
	}
	if c.Storage.WAL.Enabled && c.Storage.WAL.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("storage.wal.max_bytes: must be at least 1MiB, got %s", c.Storage.WAL.MaxBytes))
	}
	add("ingest", c.Ingest.Validate())
	if c.Ingest.Kafka != nil && !c.Storage.WAL.Enabled {
		errs = append(errs, errors.New("ingest.kafka: needs storage.wal.enabled: the counts of Kafka records are stored with their partitions' offsets through the write-ahead log's cuts"))
	}
	add("sampling", c.Sampling.Validate())
	add("export", c.Export.Validate())
	add("signals", c.Signals.Validate())
	add("auth", c.Auth.Validate())
	if c.Ingest.RequireToken && !hasIngestToken(c.Auth.Tokens) {
		errs = append(errs, errors.New("ingest.require_token: no token in auth.tokens has the ingest scope, so every OTLP export would be refused; add one (e.g. {name: collector, file: /etc/tailgate/otlp.token, scopes: [ingest]}) or set require_token: false"))
	}
	add("slo_engine", c.SLOEngine.Validate())
	add("notify", c.Notify.Validate())
	add("kill_switches", c.KillSwitches.Validate())
	add("incidents", c.Incidents.Validate())
	add("oncall", c.Oncall.Validate())
	if err := flags.Validate(c.Flags); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				errs = append(errs, errors.New(line))
			}
		}
	}
	// SLO and policy errors already start with slos[i] and policies[i].
	_, sloErr := slo.ValidateSpecs(c.SLOs)
	for _, err := range []error{sloErr, gate.ValidatePolicies(c.Policies)} {
		if err == nil {
			continue
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				errs = append(errs, errors.New(line))
			}
		}
	}
	return errors.Join(errs...)
}

// hasIngestToken reports whether a token may export spans.
func hasIngestToken(tokens []auth.Token) bool {
	for _, t := range tokens {
		if (auth.Principal{Scopes: t.Scopes}).Has(auth.ScopeIngest) {
			return true
		}
	}
	return false
}

func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	return nil
}

// annotateLines adds "line N: " to each problem whose key path can be found
// in the file, so a user can jump to it.
func annotateLines(data []byte, err error) error {
	file, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		return err
	}
	var out []error
	for _, msg := range strings.Split(err.Error(), "\n") {
		key, _, ok := strings.Cut(msg, ": ")
		if ok {
			if line := keyLine(file, key); line > 0 {
				msg = fmt.Sprintf("line %d: %s", line, msg)
			}
		}
		out = append(out, errors.New(msg))
	}
	return errors.Join(out...)
}

// keyLine returns the line of a key path such as sampling.rules[2].name,
// trying shorter prefixes when the full path is absent (a missing key is
// reported at its parent).
func keyLine(f *ast.File, key string) int {
	for p := key; p != ""; {
		path, err := yaml.PathString("$." + p)
		if err == nil {
			if node, err := path.FilterFile(f); err == nil && node != nil {
				return node.GetToken().Position.Line
			}
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return 0
}
