package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DecisionBatcher is implemented by stores that record many decisions in
// one transaction; the audit writer uses it when present.
type DecisionBatcher interface {
	AddDecisions(ctx context.Context, ds []Decision) error
}

// pending is a queued decision and where its writer reports the outcome
// of its commit.
type pending struct {
	d   Decision
	res chan error // buffered: the writer never blocks on it
}

// Sizes of the audit queue and of one group commit.
const (
	auditQueue = 4096
	auditBatch = 256
)

// auditLog queues decisions for one writer goroutine that group-commits
// them: the checks that arrive while a transaction is being written go
// into the next one, so a burst costs one transaction instead of one per
// check. Every check waits for the commit of the batch that holds its
// record (Check returns only then), so an answer the caller has seen is
// always in the audit log: batching shares the disk write, it does not
// defer it.
type auditLog struct {
	// mu guards running and the queue's closing; a send holds it shared,
	// so it never races the close.
	mu      sync.RWMutex
	running bool
	queue   chan pending
	done    chan struct{}

	enqueued atomic.Uint64
	pmu      sync.Mutex
	written  uint64        // records the writer has handled
	progress chan struct{} // closed and replaced after each batch
}

func (a *auditLog) start(ctx context.Context, g *Gate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || a.done != nil {
		return
	}
	a.running = true
	a.queue = make(chan pending, auditQueue)
	a.done = make(chan struct{})
	a.pmu.Lock()
	a.progress = make(chan struct{})
	a.pmu.Unlock()
	go a.write(ctx, g)
}

// enqueue queues d and returns the channel that receives the outcome of
// its commit; nil means the caller must write d itself (no writer, or the
// queue is full).
func (a *auditLog) enqueue(d Decision) <-chan error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.running {
		return nil
	}
	p := pending{d: d, res: make(chan error, 1)}
	select {
	case a.queue <- p:
		a.enqueued.Add(1)
		return p.res
	default:
		return nil
	}
}

func (a *auditLog) write(ctx context.Context, g *Gate) {
	defer close(a.done)
	batch := make([]Decision, 0, auditBatch)
	waiting := make([]chan error, 0, auditBatch)
	for p := range a.queue {
		batch, waiting = append(batch[:0], p.d), append(waiting[:0], p.res)
	fill:
		for len(batch) < auditBatch {
			select {
			case p, ok := <-a.queue:
				if !ok {
					break fill
				}
				batch, waiting = append(batch, p.d), append(waiting, p.res)
			default:
				break fill
			}
		}
		var err error
		if b, ok := g.store.(DecisionBatcher); ok {
			err = b.AddDecisions(ctx, batch)
		} else {
			for _, d := range batch {
				if e := g.store.AddDecision(ctx, d); e != nil && err == nil {
					err = e
				}
			}
		}
		if err != nil {
			g.metrics.auditFailures.Add(float64(len(batch)))
			g.log.Error("gate decisions not recorded in the audit log", "count", len(batch), "err", err)
		}
		for _, res := range waiting {
			res <- err
		}
		a.pmu.Lock()
		a.written += uint64(len(batch))
		close(a.progress)
		a.progress = make(chan struct{})
		a.pmu.Unlock()
	}
}

// sync waits until every record queued before the call is written.
func (a *auditLog) sync(ctx context.Context) error {
	target := a.enqueued.Load()
	for {
		a.pmu.Lock()
		if a.written >= target || a.progress == nil {
			a.pmu.Unlock()
			return nil
		}
		ch := a.progress
		a.pmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop closes the queue and waits for the writer to drain it.
func (a *auditLog) stop(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.running = false
		close(a.queue)
	}
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AuditKind names what an audit row records.
type AuditKind string

// Kinds of audit rows. Flag flips and incidents will add theirs.
const (
	AuditDecision         AuditKind = "gate.decision"
	AuditOverride         AuditKind = "gate.override"
	AuditOverrideRevoke   AuditKind = "gate.override_revoke"
	AuditCorrection       AuditKind = "slo.correction"
	AuditCorrectionDelete AuditKind = "slo.correction_delete"
	AuditFlagChange       AuditKind = "flag.change"
	AuditIncident         AuditKind = "incident.change"
)

// AuditEntry is one event to append to the audit log: what happened
// (Kind), who did it (Actor, the authenticated principal when there is
// one), when, and the thing itself as canonical JSON (Payload).
type AuditEntry struct {
	Kind    AuditKind       `json:"kind"`
	Actor   string          `json:"actor"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
}

// AuditRecord is a row of the hash-chained audit log. Hash is
// hex(sha256(prev || AuditCanonical(Seq, entry))), where prev is the
// previous row's hash as 32 raw bytes (nothing for the first row), and
// PrevHash is that previous hash in hex ("" for the first row). Seq counts
// from 1 without gaps, so a deleted row shows as a gap even before its
// successor's PrevHash is checked.
type AuditRecord struct {
	Seq int64 `json:"seq"`
	AuditEntry
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AuditStore is implemented by stores that keep the hash-chained audit
// log, one chain per store. The store's own writes (decisions, overrides,
// corrections) append their rows in the same transaction as the write;
// AppendAudit appends other events. Appends are serialized across every
// writer of the store (a process lock, a database write lock), so the
// chain never forks.
type AuditStore interface {
	AppendAudit(ctx context.Context, es []AuditEntry) error
	// AuditRecords returns at most limit rows with Seq > after, in Seq
	// order.
	AuditRecords(ctx context.Context, after int64, limit int) ([]AuditRecord, error)
}

// NewAuditEntry encodes v as the payload of an entry. encoding/json is
// deterministic for the types the gate records (struct fields in
// declaration order, map keys sorted, no insignificant space), which is
// what makes the payload canonical.
func NewAuditEntry(kind AuditKind, actor string, at time.Time, v any) (AuditEntry, error) {
	p, err := json.Marshal(v)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("encode %s audit payload: %w", kind, err)
	}
	return AuditEntry{Kind: kind, Actor: actor, Time: at, Payload: p}, nil
}

// AuditCanonical is the encoding a row's hash covers: the JSON object
//
//	{"seq":N,"kind":"...","actor":"...","time":UNIX_NANOS,"payload":PAYLOAD}
//
// with the keys in that order, no spaces, the strings encoded as
// encoding/json encodes them, the time as integer Unix nanoseconds and
// the payload's stored bytes verbatim.
func AuditCanonical(seq int64, e AuditEntry) []byte {
	kind, _ := json.Marshal(string(e.Kind)) // a string always encodes
	actor, _ := json.Marshal(e.Actor)
	b := make([]byte, 0, 64+len(kind)+len(actor)+len(e.Payload))
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"kind":`...)
	b = append(b, kind...)
	b = append(b, `,"actor":`...)
	b = append(b, actor...)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, e.Time.UnixNano(), 10)
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, '}')
}

// AuditHash returns hex(sha256(prev || AuditCanonical(seq, e))), prev
// being the previous row's hash in hex ("" for the first row).
func AuditHash(prevHex string, seq int64, e AuditEntry) (string, error) {
	prev, err := hex.DecodeString(prevHex)
	if err != nil {
		return "", fmt.Errorf("previous audit hash %q: %w", prevHex, err)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(AuditCanonical(seq, e))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ChainAudit links entries after the head row (nil for an empty log): it
// returns the rows to store, each with its Seq, PrevHash and Hash. The
// caller must hold the chain's lock from reading head to storing them.
func ChainAudit(head *AuditRecord, es []AuditEntry) ([]AuditRecord, error) {
	var seq int64
	prev := ""
	if head != nil {
		seq, prev = head.Seq, head.Hash
	}
	out := make([]AuditRecord, 0, len(es))
	for _, e := range es {
		if !json.Valid(e.Payload) {
			return nil, fmt.Errorf("%s audit payload is not JSON", e.Kind)
		}
		seq++
		h, err := AuditHash(prev, seq, e)
		if err != nil {
			return nil, err
		}
		out = append(out, AuditRecord{Seq: seq, AuditEntry: e, PrevHash: prev, Hash: h})
		prev = h
	}
	return out, nil
}

// AuditBreak is the first row where a chain does not hold.
type AuditBreak struct {
	Seq     int64     `json:"seq"`
	Kind    AuditKind `json:"kind"`
	Time    time.Time `json:"time"`
	Problem string    `json:"problem"`
}

// AuditReport is the outcome of VerifyAudit.
type AuditReport struct {
	// Rows is how many rows were checked up to the first break.
	Rows int64 `json:"rows"`
	// Head is the last intact row's hash: recording it elsewhere is what
	// catches a later truncation or rewrite of the newest rows, which no
	// chain can show by itself.
	Head   string      `json:"head"`
	Broken *AuditBreak `json:"broken,omitempty"`
}

// auditPage is how many rows VerifyAudit reads at a time.
const auditPage = 1000

// VerifyAudit walks the store's chain from its first row and reports the
// first row that breaks it: a gap in Seq (a deleted row), a PrevHash that
// is not the previous row's hash, or a Hash that is not the hash of the
// row's content. An error means the log could not be read.
func VerifyAudit(ctx context.Context, s AuditStore) (AuditReport, error) {
	var rep AuditReport
	var last int64
	prev := ""
	for {
		rs, err := s.AuditRecords(ctx, last, auditPage)
		if err != nil {
			return rep, err
		}
		for _, r := range rs {
			problem := ""
			want, err := AuditHash(r.PrevHash, r.Seq, r.AuditEntry)
			switch {
			case r.Seq != last+1:
				problem = fmt.Sprintf("row %d follows row %d: rows %d to %d are missing", r.Seq, last, last+1, r.Seq-1)
				if r.Seq == last+2 {
					problem = fmt.Sprintf("row %d follows row %d: row %d is missing", r.Seq, last, last+1)
				}
			case r.PrevHash != prev:
				problem = fmt.Sprintf("prev_hash %q is not the previous row's hash %q", r.PrevHash, prev)
			case err != nil:
				problem = err.Error()
			case r.Hash != want:
				problem = fmt.Sprintf("hash %q does not match its content, which hashes to %q", r.Hash, want)
			}
			if problem != "" {
				rep.Broken = &AuditBreak{Seq: r.Seq, Kind: r.Kind, Time: r.Time, Problem: problem}
				return rep, nil
			}
			rep.Rows++
			last, prev = r.Seq, r.Hash
			rep.Head = prev
		}
		if len(rs) < auditPage {
			return rep, nil
		}
	}
}

// decisionAudit is a decision's audit entry.
func decisionAudit(d Decision) (AuditEntry, error) {
	return NewAuditEntry(AuditDecision, d.Principal, d.EvaluatedAt, d)
}

// DecisionAudit returns the audit entries of decisions, for stores that
// write them in the same transaction as the decisions.
func DecisionAudit(ds []Decision) ([]AuditEntry, error) {
	out := make([]AuditEntry, 0, len(ds))
	for _, d := range ds {
		e, err := decisionAudit(d)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// OverrideAudit returns the audit entry of a new override. Status is
// cleared: it depends on when the override is read.
func OverrideAudit(o Override) (AuditEntry, error) {
	o.Status = ""
	return NewAuditEntry(AuditOverride, o.CreatedBy, o.CreatedAt, o)
}

// RevokeAudit returns the audit entry of an override's revocation.
func RevokeAudit(o Override) (AuditEntry, error) {
	o.Status = ""
	at := time.Time{}
	if o.RevokedAt != nil {
		at = *o.RevokedAt
	}
	return NewAuditEntry(AuditOverrideRevoke, o.RevokedBy, at, o)
}
