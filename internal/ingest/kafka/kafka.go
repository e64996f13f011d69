// Package kafka is tailgate's Kafka intake: it consumes the OTLP trace
// messages that the OpenTelemetry Collector's kafka exporter writes
// (encoding otlp_proto: each record's value is an ExportTraceServiceRequest;
// with partition_traces_by_id the records are keyed by trace ID, so a
// trace lives in one partition), as a member of a consumer group
// (twmb/franz-go), so that each partition, and with it each trace, belongs
// to one instance of a fleet at a time.
//
// Delivery is at least once, and offsets move only behind what is safe:
//
//   - The intake never commits on its own (auto-commit is off). It
//     commits, every commit_interval and when partitions are revoked, the
//     offsets its Handler reports settled: the records' counts stored and
//     their traces decided. After a crash or a rebalance the new owner
//     reads from the last commit, so records are delivered again rather
//     than lost; the Handler keeps them from being counted twice.
//   - A record the Handler refuses (backpressure) is retried, with its
//     partition paused, until it is taken: fetching waits instead of
//     dropping. A malformed record is logged, counted and skipped: it must
//     not wedge its partition.
//   - Rebalances wait while a polled batch is being handled
//     (BlockRebalanceOnPoll), so the Handler's callbacks never interleave
//     with its records.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is ingest.kafka: where to consume from.
type Config struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Group is the consumer group the fleet's instances share.
	Group    string `yaml:"group"`
	ClientID string `yaml:"client_id"`
	TLS      *TLS   `yaml:"tls"`
	SASL     *SASL  `yaml:"sasl"`
	// CommitInterval is how often settled offsets are committed (default
	// 1s).
	CommitInterval units.Duration `yaml:"commit_interval"`
	// MaxPollRecords bounds the records handled between two chances to
	// rebalance (default 1000).
	MaxPollRecords int `yaml:"max_poll_records"`
	// SessionTimeout is how long the group waits for a silent member
	// before its partitions go to the others (default 45s): the time a
	// crashed instance's partitions stand still.
	SessionTimeout units.Duration `yaml:"session_timeout"`
	// SettleMargin is how long, beyond sampling.decision_wait, a record's
	// traces are given to be decided and handed to the exporter before
	// its offset may be committed (default 10s).
	SettleMargin units.Duration `yaml:"settle_margin"`
}

// TLS configures the connection to the brokers.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures authentication to the brokers; the password comes from
// a file (a mounted Secret).
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// Enabled reports whether the intake is configured.
func (c *Config) Enabled() bool { return c != nil && (len(c.Brokers) > 0 || c.Topic != "") }

// Validate checks the configuration; errors name their key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("kafka.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one broker (host:port) is required")
	}
	for _, b := range c.Brokers {
		if _, _, ok := strings.Cut(b, ":"); !ok {
			bad("brokers", "%q is not host:port", b)
		}
	}
	if c.Topic == "" {
		bad("topic", "required (the Collector kafka exporter's topic, otlp_spans by default)")
	}
	if c.Group == "" {
		bad("group", "required: the consumer group every instance of the fleet joins")
	}
	if c.CommitInterval < 0 {
		bad("commit_interval", "must not be negative, got %s", c.CommitInterval)
	}
	if c.SessionTimeout < 0 {
		bad("session_timeout", "must not be negative, got %s", c.SessionTimeout)
	}
	if c.SettleMargin < 0 {
		bad("settle_margin", "must not be negative, got %s", c.SettleMargin)
	}
	if c.MaxPollRecords < 0 {
		bad("max_poll_records", "must not be negative, got %d", c.MaxPollRecords)
	}
	if s := c.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			bad("sasl.mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", s.Mechanism)
		}
		if s.Username == "" || s.PasswordFile == "" {
			bad("sasl", "username and password_file are required")
		}
	}
	if t := c.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	return errors.Join(errs...)
}

// Handler is what the intake feeds (the daemon). The intake calls it from
// one goroutine at a time.
type Handler interface {
	// Assigned is called when partitions are given to this instance,
	// before any of their records.
	Assigned(ctx context.Context, partitions []int32) error
	// Record takes one record's request. An error means it was not taken
	// (backpressure): the intake retries the same record.
	Record(ctx context.Context, req *otlp.Request, partition int32, offset int64) error
	// Revoked is called before partitions go to another instance: the
	// handler stores what it counted of them and returns the offsets to
	// commit for them (the last settled record of each).
	Revoked(ctx context.Context, partitions []int32) map[int32]int64
	// Lost is called for partitions taken away without notice (the
	// session expired): the handler drops their state, nothing is
	// committed.
	Lost(partitions []int32)
	// Settled returns, per owned partition, the last offset whose record
	// is settled: its counts stored and its traces decided.
	Settled(ctx context.Context) (map[int32]int64, error)
}

// Settings are an intake's dependencies.
type Settings struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Handler    Handler
	Limits     otlp.Limits
	// Retry is the wait before a refused record is offered again
	// (default 100ms).
	Retry time.Duration
}

// Intake consumes the topic into the Handler.
type Intake struct {
	cfg   Config
	set   Settings
	log   *slog.Logger
	opts  []kgo.Opt
	m     metrics
	retry time.Duration

	mu     sync.Mutex
	client *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type metrics struct {
	records, bytes, commits, commitErrors, refused prometheus.Counter
	spansRejected                                  prometheus.Counter
	rejected                                       *prometheus.CounterVec
	paused, assigned                               prometheus.Gauge
}

// New checks cfg and builds the intake; Start connects.
func New(cfg Config, set Settings) (*Intake, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if set.Handler == nil {
		return nil, errors.New("kafka intake: no handler")
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = units.Duration(time.Second)
	}
	if cfg.MaxPollRecords == 0 {
		cfg.MaxPollRecords = 1000
	}
	i := &Intake{cfg: cfg, set: set, log: set.Logger, retry: set.Retry}
	if i.retry <= 0 {
		i.retry = 100 * time.Millisecond
	}
	opts, err := i.clientOpts()
	if err != nil {
		return nil, err
	}
	i.opts = opts
	i.m = metrics{
		records:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_kafka_records_total", Help: "Kafka records taken (each an OTLP export request)."}),
		bytes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_kafka_record_bytes_total", Help: "Bytes of the Kafka records taken."}),
		commits:      prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_kafka_commits_total", Help: "Offset commits of settled records."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_kafka_commit_failures_total", Help: "Offset commits that failed (retried at the next interval)."}),
		spansRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_kafka_spans_rejected_total",
			Help: "Spans of Kafka records left out for invalid content or over ingest's per-span limits (the record's other spans are taken)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailgate_kafka_backpressure_records_total", Help: "Times a record was refused by the pipeline (backpressure) and offered again."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tailgate_kafka_records_rejected_total",
			Help: "Kafka records skipped because they are not OTLP trace requests, by reason."}, []string{"reason"}),
		paused:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailgate_kafka_paused_partitions", Help: "Partitions whose fetching waits for the pipeline (backpressure)."}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailgate_kafka_assigned_partitions", Help: "Partitions of the topic this instance owns in the consumer group."}),
	}
	if set.Registerer != nil {
		for _, c := range []prometheus.Collector{i.m.records, i.m.bytes, i.m.commits, i.m.commitErrors, i.m.refused, i.m.spansRejected, i.m.rejected, i.m.paused, i.m.assigned} {
			if err := set.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("kafka intake metrics: %w", err)
			}
		}
	}
	return i, nil
}

func (i *Intake) clientOpts() ([]kgo.Opt, error) {
	c := i.cfg
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ConsumeTopics(c.Topic),
		kgo.ConsumerGroup(c.Group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.OnPartitionsAssigned(i.assigned),
		kgo.OnPartitionsRevoked(i.revoked),
		kgo.OnPartitionsLost(i.lost),
	}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if st := c.SessionTimeout.Std(); st > 0 {
		opts = append(opts, kgo.SessionTimeout(st), kgo.HeartbeatInterval(min(3*time.Second, st/3)))
	}
	if t := c.TLS; t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the user's explicit choice
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file: no certificate in %s", t.CAFile)
			}
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := c.SASL; s != nil {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		pass := strings.TrimSpace(string(b))
		switch s.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}

// Start connects and starts consuming and committing. It returns once the
// client exists; joining the group happens in the background.
func (i *Intake) Start(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client != nil {
		return errors.New("kafka intake already started")
	}
	cl, err := kgo.NewClient(i.opts...)
	if err != nil {
		return fmt.Errorf("kafka intake: %w", err)
	}
	i.client = cl
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	i.cancel = cancel
	i.wg.Go(func() { i.consume(runCtx) })
	i.wg.Go(func() { i.commitLoop(runCtx) })
	i.log.Info("consuming OTLP from Kafka", "brokers", strings.Join(i.cfg.Brokers, ","), "topic", i.cfg.Topic, "group", i.cfg.Group)
	return nil
}

// consume polls and hands each record to the handler, in order per
// partition.
func (i *Intake) consume(ctx context.Context) {
	var req otlp.Request
	for ctx.Err() == nil {
		fs := i.client.PollRecords(ctx, i.cfg.MaxPollRecords)
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				i.log.Warn("kafka fetch", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if ctx.Err() != nil {
				return // the rest is delivered again after a restart
			}
			i.handle(ctx, &req, r)
		})
		i.client.AllowRebalance()
	}
}

// handle parses one record and offers it to the handler until taken.
func (i *Intake) handle(ctx context.Context, req *otlp.Request, r *kgo.Record) {
	i.m.records.Inc()
	i.m.bytes.Add(float64(len(r.Value)))
	req.Reset()
	if err := otlp.Parse(r.Value, i.set.Limits, req); err != nil {
		i.m.rejected.WithLabelValues("malformed").Inc()
		i.log.Warn("skipping a Kafka record that is not an OTLP trace request", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset, "err", err)
		// Offered anyway, empty: the handler sees the offset go by, so it
		// can be committed past.
		req.Reset()
	} else if req.Rejected > 0 {
		i.m.spansRejected.Add(float64(req.Rejected))
		i.log.Warn("left out spans of a Kafka record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"spans", req.Rejected, "reason", req.RejectReason)
	}
	paused := false
	for {
		err := i.set.Handler.Record(ctx, req, r.Partition, r.Offset)
		if err == nil || ctx.Err() != nil {
			break
		}
		i.m.refused.Inc()
		if !paused {
			i.client.PauseFetchPartitions(map[string][]int32{r.Topic: {r.Partition}})
			i.m.paused.Inc()
			paused = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(i.retry):
		}
	}
	if paused {
		i.client.ResumeFetchPartitions(map[string][]int32{r.Topic: {r.Partition}})
		i.m.paused.Dec()
	}
}

func (i *Intake) commitLoop(ctx context.Context) {
	t := time.NewTicker(i.cfg.CommitInterval.Std())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			offs, err := i.set.Handler.Settled(ctx)
			if err != nil {
				i.m.commitErrors.Inc()
				i.log.Warn("kafka: cannot tell which records are settled; committing later", "err", err)
				continue
			}
			i.commit(ctx, offs)
		}
	}
}

// commit commits, per partition, the offset after the last settled record.
func (i *Intake) commit(ctx context.Context, last map[int32]int64) {
	if len(last) == 0 {
		return
	}
	offs := make(map[int32]kgo.EpochOffset, len(last))
	for p, o := range last {
		offs[p] = kgo.EpochOffset{Epoch: -1, Offset: o + 1}
	}
	var failed error
	i.client.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{i.cfg.Topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				failed = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 {
						failed = fmt.Errorf("partition %d: error code %d", p.Partition, p.ErrorCode)
					}
				}
			}
		})
	if failed != nil {
		i.m.commitErrors.Inc()
		i.log.Warn("kafka offset commit failed; retried at the next interval", "err", failed)
		return
	}
	i.m.commits.Inc()
}

func (i *Intake) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	ps := m[i.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	if err := i.set.Handler.Assigned(ctx, ps); err != nil {
		// The handler could not read where counting stands: leave the
		// group so another instance (or this one, rejoining) takes them.
		i.log.Error("kafka: cannot take partitions; leaving the group to rejoin", "partitions", partitionList(ps), "err", err)
		go i.client.LeaveGroup()
		return
	}
	i.m.assigned.Add(float64(len(ps)))
	i.log.Info("kafka partitions assigned", "topic", i.cfg.Topic, "partitions", partitionList(ps))
}

func (i *Intake) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	ps := m[i.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	i.commit(ctx, i.set.Handler.Revoked(ctx, ps))
	i.m.assigned.Sub(float64(len(ps)))
	i.log.Info("kafka partitions revoked", "topic", i.cfg.Topic, "partitions", partitionList(ps))
}

func (i *Intake) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	ps := m[i.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	i.set.Handler.Lost(ps)
	i.m.assigned.Sub(float64(len(ps)))
	i.log.Warn("kafka partitions lost (session expired); their uncommitted records go to their next owner", "partitions", partitionList(ps))
}

func partitionList(ps []int32) string {
	s := make([]string, len(ps))
	for k, p := range ps {
		s[k] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// Stop stops consuming and committing; the partitions stay assigned (and
// the group membership alive) until Shutdown, so that the pipeline can
// drain what was taken first.
func (i *Intake) Stop(context.Context) error {
	i.mu.Lock()
	cancel := i.cancel
	i.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	i.wg.Wait()
	return nil
}

// Shutdown stops consuming, commits what is settled and leaves the group:
// its partitions are revoked, so the handler stores their counts and the
// last commit follows.
func (i *Intake) Shutdown(ctx context.Context) error {
	i.mu.Lock()
	cl := i.client
	i.mu.Unlock()
	if cl == nil {
		return nil
	}
	if err := i.Stop(ctx); err != nil {
		return err
	}
	if offs, err := i.set.Handler.Settled(ctx); err == nil {
		i.commit(ctx, offs)
	}
	var err error
	if lerr := cl.LeaveGroupContext(ctx); lerr != nil {
		err = fmt.Errorf("leave consumer group %s: %w", i.cfg.Group, lerr)
	}
	cl.Close()
	return err
}
