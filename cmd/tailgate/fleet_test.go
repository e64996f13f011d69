package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fleetMember is one tailgate process of TestFleetOnPostgres.
type fleetMember struct {
	name, api, otlp, cfg string
	p                    *exec.Cmd
}

// TestFleetOnPostgres is issue 11's acceptance run: three tailgate
// processes share one PostgreSQL, each taking its own share of the load.
// Every instance's SLO totals equal the requests all of them acknowledged;
// the leader is killed with SIGKILL, the others keep answering the gate
// and one of them takes over; the killed instance restarts and replays its
// write-ahead log; and the budget-exhausted alert reached the webhook
// once, not once per instance.
func TestFleetOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dsn := pg.Database(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tailgate")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var mu sync.Mutex
	var firing []string // the alerts of the firing notifications received
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Status, Alert, SLO string
			Labels             map[string]string
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		if p.Labels["cell"] != "test-cell" {
			t.Errorf("notification labels %v, want cell test-cell", p.Labels)
		}
		if p.Status == "firing" {
			mu.Lock()
			firing = append(firing, p.SLO+"/"+p.Alert)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	// The DSN comes from a file, as a Secret would give it.
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	members := make([]*fleetMember, 3)
	for i := range members {
		ports := freePorts(t, 3)
		m := &fleetMember{name: fmt.Sprint("tg-", i), api: "127.0.0.1:" + strconv.Itoa(ports[0]), otlp: "127.0.0.1:" + strconv.Itoa(ports[1])}
		m.cfg = filepath.Join(dir, m.name+".yaml")
		cfg := fmt.Sprintf(`instance: %s
cell: test-cell
server: {api: %q}
ingest: {otlp_grpc: "127.0.0.1:%d", otlp_http: %q}
storage: {path: %q, postgres_file: %q}
fleet: {heartbeat_interval: 200ms}
auth: {allow_anonymous_writes: true}
slo_engine: {flush_interval: 100ms, eval_interval: 200ms}
notify: {webhooks: [{url: %q}]}
slos:
  - {name: checkout-availability, service: checkout, objective: 99.9, window: 30d, sli: {kind: availability}}
`, m.name, m.api, ports[2], m.otlp, filepath.Join(dir, m.name), dsnFile, hook.URL)
		if err := os.WriteFile(m.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		m.p = startServe(t, bin, m.cfg, m.api)
		members[i] = m
	}
	defer func() {
		for _, m := range members {
			if m.p != nil && m.p.ProcessState == nil {
				_ = m.p.Process.Signal(syscall.SIGTERM)
				_ = m.p.Wait()
			}
		}
	}()

	acked, ackedGood := 0, 0
	send := func(ms []*fleetMember, n int) {
		t.Helper()
		client := &http.Client{Timeout: 10 * time.Second}
		for i := range n {
			m := ms[i%len(ms)]
			body, good, total := checkoutRequest(uint64(acked+1), 0, i)
			resp, err := client.Post("http://"+m.otlp+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				t.Fatalf("send to %s: %v", m.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("send to %s: HTTP %d", m.name, resp.StatusCode)
			}
			acked += total
			ackedGood += good
		}
	}
	send(members, 150)

	// One leader, known to every member.
	leader := waitFor(t, "one leader", func() (int, bool) {
		lead, n := -1, 0
		for i, m := range members {
			var f struct{ Leader bool }
			if fleetGet(t, m.api, "/api/v1/fleet", &f) != http.StatusOK {
				return 0, false
			}
			if f.Leader {
				lead, n = i, n+1
			}
		}
		return lead, n == 1
	})
	waitFor(t, "the budget-exhausted page", func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return 0, len(firing) > 0
	})

	// Kill the leader between requests; the others take the rest.
	dead := members[leader]
	if err := dead.p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = dead.p.Wait()
	var alive []*fleetMember
	for _, m := range members {
		if m != dead {
			alive = append(alive, m)
		}
	}
	send(alive, 150)

	// The survivors answer the gate, and one of them leads.
	for _, m := range alive {
		resp, err := http.Post("http://"+m.api+"/api/v1/gate/check", "application/json",
			strings.NewReader(`{"service":"checkout","change_class":"feature"}`))
		if err != nil {
			t.Fatal(err)
		}
		var d struct{ Decision string }
		_ = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || d.Decision != "deny" {
			t.Errorf("%s's gate with the leader dead: HTTP %d decision %q, want 200 deny (the budget is spent)", m.name, resp.StatusCode, d.Decision)
		}
	}
	waitFor(t, "a new leader", func() (int, bool) {
		n := 0
		for _, m := range alive {
			var f struct{ Leader bool }
			if fleetGet(t, m.api, "/api/v1/fleet", &f) == http.StatusOK && f.Leader {
				n++
			}
		}
		return 0, n == 1
	})

	// The killed instance restarts: its log gives back what it had not
	// flushed, and every instance then reads the fleet's exact totals.
	dead.p = startServe(t, bin, dead.cfg, dead.api)
	for _, m := range members {
		waitFor(t, m.name+"'s totals", func() (int, bool) {
			var st struct{ Good, Total float64 }
			fleetGet(t, m.api, "/api/v1/slos/checkout-availability", &st)
			return 0, int(st.Total) == acked && int(st.Good) == ackedGood
		})
	}
	// An override made on one instance takes effect on the others.
	body := fmt.Sprintf(`{"service":"checkout","change_classes":["feature"],"reason":"fleet test","approved_by":"sre-lead","expires_at":%q}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	req, _ := http.NewRequest(http.MethodPost, "http://"+members[0].api+"/api/v1/gate/overrides", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("override on %s: HTTP %d", members[0].name, resp.StatusCode)
	}
	for _, m := range members[1:] {
		waitFor(t, "the override on "+m.name, func() (int, bool) {
			resp, err := http.Post("http://"+m.api+"/api/v1/gate/check", "application/json",
				strings.NewReader(`{"service":"checkout","change_class":"feature"}`))
			if err != nil {
				return 0, false
			}
			defer resp.Body.Close()
			var d struct {
				Decision   string
				PolicyRule string `json:"policy_rule"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&d)
			return 0, d.Decision == "allow" && d.PolicyRule == "override"
		})
	}

	// tailgate fleet status lists the three, one of them the leader.
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"tailgate", "fleet", "status", "--server", "http://" + members[0].api}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("fleet status: exit %d: %s", code, errOut.String())
	}
	if got := out.String(); strings.Count(got, "leader") != 1 || strings.Count(got, " ok\n") != 3 || !strings.Contains(got, "cell test-cell") {
		t.Errorf("fleet status printed:\n%s", got)
	}
	// The store goes away (no new connections, the open ones cut): every
	// instance stays ready and says why in /readyz, and the gate still
	// answers from memory.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER DATABASE ` + dbName + ` ALLOW_CONNECTIONS false`,
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + dbName + `'`,
	} {
		if _, err := admin.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close(t.Context())
	for _, m := range members {
		waitFor(t, m.name+" to report the store down", func() (int, bool) {
			var r struct {
				Status   string
				Degraded []string
			}
			code := fleetGet(t, m.api, "/readyz", &r)
			return 0, code == http.StatusOK && r.Status == "ready" && len(r.Degraded) > 0 && strings.Contains(r.Degraded[0], "fleet store")
		})
		resp, err := http.Post("http://"+m.api+"/api/v1/gate/check", "application/json",
			strings.NewReader(`{"service":"checkout","change_class":"feature"}`))
		if err != nil {
			t.Fatal(err)
		}
		var d struct{ Decision string }
		_ = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || d.Decision == "" {
			t.Errorf("%s's gate with the store down: HTTP %d decision %q, want an answer", m.name, resp.StatusCode, d.Decision)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(firing) != 1 || firing[0] != "checkout-availability/budget-exhausted" {
		t.Errorf("firing notifications %v, want one budget-exhausted", firing)
	}
	t.Logf("%d requests acknowledged by 3 instances (%d good), equal on every instance after the leader's kill -9 and restart; %d firing notification(s)",
		acked, ackedGood, len(firing))
}

// waitFor polls cond until it holds, for at most 60 s (each poll is
// bounded; the loop ends by itself), and returns its value.
func waitFor(t *testing.T, what string, cond func() (int, bool)) int {
	t.Helper()
	for range 600 {
		if v, ok := cond(); ok {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
	return 0
}

func fleetGet(t *testing.T, api, path string, v any) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + api + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return 0
	}
	return resp.StatusCode
}
