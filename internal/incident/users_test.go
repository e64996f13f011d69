package incident_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/users"
)

// userRequest is one entry span of service per user (user.id u<from+i>),
// ending at end, failed or not.
func userRequest(t *testing.T, service string, from, n int, failed bool, end time.Time) *otlp.Request {
	return otlptest.SpanRequest(t, map[string]string{"service.name": service}, n, func(i int, sp ptrace.Span) {
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		sp.Attributes().PutStr("user.id", fmt.Sprint("u", from+i))
		if failed {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	})
}

// TestPostmortemUsersAffected checks the post-mortem's users affected:
// the distinct user.id of the service's failed requests during the
// incident, merged from two instances' sketches (one stored, one in
// memory): users u0..u99 failed on one instance and u50..u149 on the
// other, 150 in all. The users of requests that did not fail, of failures
// before the incident and of another service are not counted.
func TestPostmortemUsersAffected(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clk := &clock{t: t0}
	cfg := incident.DefaultConfig()
	cfg.UserAttribute = "user.id"
	here, there := users.NewCounter("user.id", 24*time.Hour), users.NewCounter("user.id", 24*time.Hour)
	failing := t0.Add(3 * time.Minute)
	there.Observe(userRequest(t, "frontend", 0, 100, true, failing), failing)
	here.Observe(userRequest(t, "frontend", 50, 100, true, failing), failing)
	here.Observe(userRequest(t, "frontend", 1000, 500, false, failing), failing)
	here.Observe(userRequest(t, "payments", 0, 40, true, failing), failing)
	early := t0.Add(-3 * time.Hour)
	here.Observe(userRequest(t, "frontend", 5000, 30, true, early), early)
	if err := db.PutUserSketches(ctx, there.Unstored()); err != nil {
		t.Fatal(err)
	}

	// Seven kept failed traces of frontend in one minute: five are
	// recorded; one of payments, not involved, is not listed.
	var ev incident.Evidence
	for i := range 7 {
		ev.Record("frontend", fmt.Sprintf("%032x", i), failing)
	}
	ev.Record("payments", fmt.Sprintf("%032x", 99), failing)
	if err := ev.Flush(ctx, db); err != nil {
		t.Fatal(err)
	}

	svc, err := incident.NewService(cfg, incident.Settings{Store: db, SLOs: specs(), Buckets: db, Gate: db, Now: clk.Now, Evidence: db,
		Users: func(ctx context.Context, service string, from, to time.Time) (uint64, bool, error) {
			return here.Estimate(ctx, db, service, from, to)
		}})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := svc.Declare(ctx, incident.DeclareRequest{Service: "frontend", Title: "frontend errors"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(20 * time.Minute))
	rep, err := svc.Report(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UserAttribute != "user.id" || off(rep.Users["frontend"], 150) || len(rep.Users) != 1 {
		t.Errorf("users affected %v by %q, want frontend about 150 by user.id", rep.Users, rep.UserAttribute)
	}
	var md bytes.Buffer
	if err := svc.Postmortem(ctx, inc.ID, &md); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Users affected \(distinct user\.id of the failed requests, estimated within about 3%\): frontend (\d+)\.`).FindStringSubmatch(md.String())
	if m == nil {
		t.Fatalf("post-mortem lacks the users affected:\n%s", md.String())
	}
	if n, _ := strconv.Atoi(m[1]); uint64(n) != rep.Users["frontend"] {
		t.Errorf("post-mortem says %s users, the report %d", m[1], rep.Users["frontend"])
	}
	evidence := regexp.MustCompile("(?m)^- `([0-9a-f]{32})` frontend, 10:03$").FindAllStringSubmatch(md.String(), -1)
	if len(evidence) != 5 || evidence[0][1] != fmt.Sprintf("%032x", 0) || strings.Contains(md.String(), fmt.Sprintf("%032x", 99)) {
		t.Errorf("evidence %v, want the first five of frontend's traces and none of payments:\n%s", evidence, md.String())
	}
}

// off reports whether got is further from want than four standard errors
// of the sketch (1.04/sqrt(1024), 3.25%).
func off(got uint64, want int) bool {
	return math.Abs(float64(got)-float64(want)) > 4*0.0325*float64(want)
}

// TestPostmortemTrigger checks the trigger the draft names: the last
// change before the first bad minute (10:01), within the hour: a deploy
// of an involved service or a person's flag change; rollbacks and
// kill-switch flips are consequences, not triggers.
func TestPostmortemTrigger(t *testing.T) {
	ctx := t.Context()
	flips := []flags.Change{
		{Key: "new-checkout", Action: flags.ActionFlip, Actor: "alice", At: t0.Add(-20 * time.Minute), To: "on"},
		{Key: "recommendations", Action: flags.ActionFlip, Actor: "kill-switch", Source: "kill_switch", At: t0.Add(30 * time.Second), To: "off"},
	}
	r := newRig(t, flips)
	var bs []slo.Bucket
	for i, good := range []uint64{1000, 900, 800} {
		bs = append(bs, slo.Bucket{SLO: "frontend-availability", Minute: t0.Add(time.Duration(i) * time.Minute), Good: good, Total: 1000})
	}
	if err := r.db.AddSLIBuckets(ctx, bs); err != nil {
		t.Fatal(err)
	}
	for _, d := range []gate.Deploy{
		{ID: "dep_1", Service: "frontend", Version: "5.1.0", ChangeClass: gate.Feature, Time: t0.Add(-40 * time.Minute)},
		{ID: "dep_2", Service: "frontend", Version: "5.2.0", ChangeClass: gate.Feature, Time: t0.Add(-time.Minute), Description: "new cart"},
		{ID: "dep_3", Service: "frontend", Version: "5.1.0", ChangeClass: gate.Rollback, Time: t0.Add(30 * time.Second)},
		{ID: "dep_4", Service: "search", Version: "1.0.0", ChangeClass: gate.Feature, Time: t0.Add(-10 * time.Second)},
	} {
		if err := r.db.AddDeploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	r.clk.set(t0.Add(2 * time.Minute))
	inc, err := r.svc.Declare(ctx, incident.DeclareRequest{Service: "frontend", Title: "frontend errors"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.svc.Report(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := "the deploy of frontend 5.2.0 (feature) at 09:59:00, 2m before the first bad minute: new cart"
	if rep.Trigger != want {
		t.Errorf("trigger %q, want %q", rep.Trigger, want)
	}
	var md bytes.Buffer
	if err := r.svc.Postmortem(ctx, inc.ID, &md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## Trigger\n\nLikely: "+want+".") {
		t.Errorf("post-mortem's trigger section:\n%s", md.String())
	}
}
