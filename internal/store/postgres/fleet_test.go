package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/users"
)

// TestMigrationsRaceOnce opens a fresh database from several instances at
// once: the migration lock lets one apply the schema and the others find
// it applied, so every Open succeeds and each migration is recorded once.
func TestMigrationsRaceOnce(t *testing.T) {
	dsn := pg.Database(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			db, err := postgres.Open(t.Context(), dsn, postgres.Options{Instance: fmt.Sprint("i", i)})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var rows, max int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.Version() || max != postgres.Version() {
		t.Fatalf("schema_migrations has %d rows up to version %d, want %d rows up to %d", rows, max, postgres.Version(), postgres.Version())
	}
}

// TestRollingUpgrade plays a rolling upgrade: an instance of this version
// runs; a newer version migrates the schema (simulated by recording a
// migration this version does not know and adding a column, as additive
// migrations do); the running instance keeps reading and writing, and a
// restart of this old version refuses the newer schema instead of writing
// to it.
func TestRollingUpgrade(t *testing.T) {
	dsn := pg.Database(t)
	old := openDB(t, dsn, "old")
	defer old.Close()
	ctx := t.Context()
	minute := time.Date(2026, 3, 4, 10, 7, 0, 0, time.UTC)
	if err := old.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: minute, Good: 9, Total: 10}}); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	next := postgres.Version() + 1
	for _, q := range []string{
		`ALTER TABLE slo_buckets ADD COLUMN IF NOT EXISTS note TEXT NOT NULL DEFAULT ''`,
		fmt.Sprintf(`INSERT INTO schema_migrations (version, name, applied_by) VALUES (%d, 'from the future', 'new')`, next),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// The running old instance still works on the additive schema.
	if err := old.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "a", Minute: minute, Good: 1, Total: 1}}); err != nil {
		t.Fatalf("old instance after the upgrade: %v", err)
	}
	bs, err := old.LoadSLIBuckets(ctx, minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Good != 10 || bs[0].Total != 11 {
		t.Fatalf("old instance reads %+v, want one bucket 10/11", bs)
	}

	// A restart of the old version refuses the newer schema.
	_, err = postgres.Open(ctx, dsn, postgres.Options{Instance: "old"})
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("opening a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// TestPeerBuckets checks the fleet's counts: each instance loads its own
// rows and reads the sum of the others', and a read that gives the cursor
// of the previous one returns only the minutes changed since.
func TestPeerBuckets(t *testing.T) {
	dsn := pg.Database(t)
	a, b, c := openDB(t, dsn, "a"), openDB(t, dsn, "b"), openDB(t, dsn, "c")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	ctx := t.Context()
	m0 := time.Date(2026, 3, 4, 10, 7, 0, 0, time.UTC)
	m1 := m0.Add(time.Minute)
	must(t, a.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "x", Minute: m0, Good: 5, Total: 6}, {SLO: "x", Minute: m1, Good: 1, Total: 1}}))
	must(t, b.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "x", Minute: m0, Good: 7, Total: 10}}))
	must(t, c.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "x", Group: "eu", Minute: m0, Good: 2, Total: 2}}))

	own, err := a.LoadSLIBuckets(ctx, m0)
	must(t, err)
	if len(own) != 2 || own[0].Good != 5 || own[0].Total != 6 || own[1].Total != 1 {
		t.Fatalf("a's own buckets: %+v", own)
	}
	peers, at, err := a.PeerSLIBuckets(ctx, m0, time.Time{})
	must(t, err)
	// By hand: b's 7/10 at m0; c's 2/2 at m0 in group eu.
	want := map[string][2]uint64{"x//" + m0.Format(time.RFC3339): {7, 10}, "x/eu/" + m0.Format(time.RFC3339): {2, 2}}
	got := map[string][2]uint64{}
	for _, p := range peers {
		got[p.SLO+"/"+p.Group+"/"+p.Minute.Format(time.RFC3339)] = [2]uint64{p.Good, p.Total}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a's peers: %v, want %v", got, want)
	}
	fleet, err := a.FleetSLIBuckets(ctx, m0)
	must(t, err)
	var total uint64
	for _, f := range fleet {
		total += f.Total
	}
	if total != 6+1+10+2 {
		t.Fatalf("fleet total %d, want 19", total)
	}

	// A later read with the cursor sees b's new counts as the whole sum of
	// the minute, and nothing of minutes nobody changed since. The cursor
	// is moved past the overlap so that the old rows are out of it.
	must(t, b.AddSLIBuckets(ctx, []slo.Bucket{{SLO: "x", Minute: m0, Good: 1, Total: 1}}))
	peers, _, err = a.PeerSLIBuckets(ctx, m0, at)
	must(t, err)
	var m0sum *slo.Bucket
	for i := range peers {
		if peers[i].Group == "" && peers[i].Minute.Equal(m0) {
			m0sum = &peers[i]
		}
	}
	if m0sum == nil || m0sum.Good != 8 || m0sum.Total != 11 {
		t.Fatalf("after b's write, a's peers of m0: %+v, want 8/11", peers)
	}
}

// twoInstances opens instances a and b of a fresh database, closed when
// the test ends (closing twice is harmless).
func twoInstances(t *testing.T) (dsn string, a, b *postgres.DB) {
	dsn = pg.Database(t)
	a, b = openDB(t, dsn, "a"), openDB(t, dsn, "b")
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return dsn, a, b
}

// TestLeadership checks the leader lock: one of two instances leads; a
// renewal records the leader's claim on the lock's session and fails once
// the server has ended that session; when the leader releases (or its
// connection dies), the other takes over at its next try.
func TestLeadership(t *testing.T) {
	dsn, a, b := twoInstances(t)
	ctx := t.Context()
	la, lb := a.Leadership(), b.Leadership()
	gotA, err := la.TryLead(ctx, time.Minute)
	must(t, err)
	gotB, err := lb.TryLead(ctx, time.Minute)
	must(t, err)
	if !gotA || gotB {
		t.Fatalf("a leads %v, b leads %v; want only a", gotA, gotB)
	}
	if err := lb.Renew(ctx, postgres.Member{Health: "ok"}); err == nil {
		t.Fatal("b renewed a lock it does not hold")
	}
	must(t, la.Renew(ctx, postgres.Member{Cell: "eu-1", Version: "v1", Health: "ok"}))
	ms, dbNow, err := b.Members(ctx)
	must(t, err)
	if len(ms) != 1 || ms[0].Instance != "a" || !ms[0].Leader || ms[0].Heartbeat.After(dbNow) {
		t.Fatalf("members after a's renewal: %+v (now %v), want a's claim", ms, dbNow)
	}

	// The server ends a's session (as it does when a's connection is cut
	// and its keepalives fail): a's renewal fails, and b takes the lock.
	conn, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer conn.Close(ctx)
	var ended bool
	must(t, conn.QueryRow(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_locks
		WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&ended))
	if !ended {
		t.Fatal("no session held an advisory lock")
	}
	if err := la.Renew(ctx, postgres.Member{Health: "ok"}); err == nil || la.Leading() {
		t.Fatalf("a's renewal after its session ended: %v (leading %v), want an error and not leading", err, la.Leading())
	}
	gotB, err = lb.TryLead(ctx, time.Minute)
	must(t, err)
	if !gotB {
		t.Fatal("b did not take over after a's session ended")
	}
	must(t, lb.Renew(ctx, postgres.Member{Health: "ok"}))

	// b gives the lock up; a takes it back at its next try.
	lb.Release()
	if lb.Leading() {
		t.Fatal("b still leads after Release")
	}
	gotA, err = la.TryLead(ctx, time.Minute)
	must(t, err)
	if !gotA {
		t.Fatal("a did not take the lock b released")
	}
	// The leader's connection closes: the server releases the lock.
	a.Close()
	gotB, err = lb.TryLead(ctx, time.Minute)
	must(t, err)
	if !gotB {
		t.Fatal("b did not take over after a's connection closed")
	}
}

// TestLeaderSessionIdle checks that a leader that falls silent, as one
// whose host died would, loses the lock once its session has been idle for
// the lease: the database ends the session by itself, and another
// instance takes the lock (its connection stays open all along, as a dead
// host's would until TCP gives up on it).
func TestLeaderSessionIdle(t *testing.T) {
	_, a, b := twoInstances(t)
	ctx := t.Context()
	la, lb := a.Leadership(), b.Leadership()
	got, err := la.TryLead(ctx, 500*time.Millisecond)
	must(t, err)
	if !got {
		t.Fatal("a did not take the free lock")
	}
	// b tries until the lock is free; a bounded loop, not a timing
	// assertion: the server's timer frees it when it fires.
	for i := 0; ; i++ {
		got, err := lb.TryLead(ctx, time.Minute)
		must(t, err)
		if got {
			break
		}
		if i == 600 {
			t.Fatal("a's silent session still holds the lock after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := la.Renew(ctx, postgres.Member{Health: "ok"}); err == nil || la.Leading() {
		t.Fatalf("a renewed after its session ended: %v (leading %v)", err, la.Leading())
	}
}

// TestHeartbeats checks the fleet's member list.
func TestHeartbeats(t *testing.T) {
	dsn := pg.Database(t)
	a, b := openDB(t, dsn, "a"), openDB(t, dsn, "b")
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	start := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	must(t, a.Heartbeat(ctx, postgres.Member{Cell: "eu-1", Version: "v1", Started: start, Leader: true, FlushedUntil: start.Add(time.Minute), Health: "ok"}))
	must(t, b.Heartbeat(ctx, postgres.Member{Cell: "eu-1", Version: "v2", Started: start, Health: "ok"}))
	// flushed_until never goes back.
	must(t, a.Heartbeat(ctx, postgres.Member{Cell: "eu-1", Version: "v1", Started: start, Leader: true, Health: "ok"}))
	ms, now, err := a.Members(ctx)
	must(t, err)
	if len(ms) != 2 || ms[0].Instance != "a" || !ms[0].Leader || ms[1].Leader || ms[1].Version != "v2" {
		t.Fatalf("members: %+v", ms)
	}
	if !ms[0].FlushedUntil.Equal(start.Add(time.Minute)) {
		t.Fatalf("a's flushed_until %v, want %v", ms[0].FlushedUntil, start.Add(time.Minute))
	}
	if ms[0].Schema != postgres.Version() || now.Before(ms[0].Heartbeat) {
		t.Fatalf("a's schema %d, heartbeat %v, now %v", ms[0].Schema, ms[0].Heartbeat, now)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=require": "postgres://u:xxxxx@h:5432/db?sslmode=require",
		"postgres://u@h/db?password=secret":             "postgres://u@h/db?password=xxxxx",
		"host=h user=u password=secret":                 "(connection string with a password)",
		"postgres://u@h/db":                             "postgres://u@h/db",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPeerCanaryCounts checks the fleet's canary counts: each instance
// reads its own rows and the sum of the others' per service, version and
// minute.
func TestPeerCanaryCounts(t *testing.T) {
	dsn := pg.Database(t)
	a, b, c := openDB(t, dsn, "a"), openDB(t, dsn, "b"), openDB(t, dsn, "c")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	ctx := t.Context()
	m := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	row := func(req, bad uint64) []canary.VersionRow {
		return []canary.VersionRow{{Service: "checkout", Version: "2.4.0", Minute: m, Counts: canary.Counts{Requests: req, Errors: bad}}}
	}
	for db, n := range map[*postgres.DB]uint64{a: 10, b: 20, c: 30} {
		if err := db.AddCanaryCounts(ctx, row(n, n/10)); err != nil {
			t.Fatal(err)
		}
	}
	own, peers, err := a.CanaryCounts(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(own) != 1 || own[0].Requests != 10 || own[0].Errors != 1 {
		t.Errorf("a's own counts %+v, want 10 requests, 1 error", own)
	}
	if len(peers) != 1 || peers[0].Requests != 50 || peers[0].Errors != 5 || !peers[0].Minute.Equal(m) {
		t.Errorf("a's peers %+v, want b's and c's summed: 50 requests, 5 errors at %s", peers, m)
	}
}

// TestPeerUserSketches checks that a reader gets every instance's sketch
// of the same ten minutes, to merge.
func TestPeerUserSketches(t *testing.T) {
	dsn := pg.Database(t)
	a, b := openDB(t, dsn, "a"), openDB(t, dsn, "b")
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var ska, skb users.Sketch
	ska[0], skb[1] = 3, 5
	if err := a.PutUserSketches(ctx, []users.Row{{Service: "checkout", Start: start, Sketch: ska}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutUserSketches(ctx, []users.Row{{Service: "checkout", Start: start, Sketch: skb}}); err != nil {
		t.Fatal(err)
	}
	rows, err := a.UserSketches(ctx, "checkout", start, start.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var merged users.Sketch
	for i := range rows {
		merged.Merge(&rows[i].Sketch)
	}
	if len(rows) != 2 || merged[0] != 3 || merged[1] != 5 {
		t.Errorf("%d sketches, merged registers %v, want both instances'", len(rows), merged[:2])
	}
}
