package memlimit

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestCgroupLimit(t *testing.T) {
	tests := []struct {
		dir     string
		want    int64
		wantOK  bool
		wantErr string
	}{
		{dir: "v2-max"},
		// The parent's 1GiB is smaller than the container's own 2GiB.
		{dir: "v2-nested", want: 1 << 30, wantOK: true},
		{dir: "v2-namespace", want: 512 << 20, wantOK: true},
		// /proc/self/cgroup names a host path; the mount is the container's.
		{dir: "v2-hostpath", want: 768 << 20, wantOK: true},
		// The root's 9223372036854771712 is v1's "no limit".
		{dir: "v1", want: 4 << 30, wantOK: true},
		{dir: "v1-unlimited"},
		{dir: "garbage", wantErr: `read /sys/fs/cgroup/memory.max: not a memory limit: "lots"`},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, ok, err := CgroupLimit(os.DirFS("testdata/" + tt.dir))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("CgroupLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	t.Run("no cgroup files", func(t *testing.T) {
		if got, ok, err := CgroupLimit(os.DirFS(t.TempDir())); got != 0 || ok || err != nil {
			t.Errorf("CgroupLimit = %d, %v, %v; want 0, false, nil", got, ok, err)
		}
	})
}

func TestSettingText(t *testing.T) {
	tests := []struct {
		in      string
		want    Setting
		str     string
		wantErr string
	}{
		{in: "auto", want: Auto(), str: "auto"},
		{in: "none", want: None(), str: "none"},
		{in: "0", want: None(), str: "none"},
		{in: "2GiB", want: Bytes(2 << 30), str: "2GiB"},
		{in: "1500MB", want: Bytes(1500e6), str: "1500000000B"},
		{in: "lots", wantErr: "memory limit must be auto, none or a size such as 2GiB"},
	}
	for _, tt := range tests {
		var got Setting
		err := got.UnmarshalText([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("%q: got %v (%q), %v; want %v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
		}
	}

	var cfg struct {
		Limit Setting `yaml:"memory_limit"`
	}
	cfg.Limit = Auto()
	if err := yaml.Unmarshal([]byte("memory_limit: 512MiB\n"), &cfg); err != nil || cfg.Limit != Bytes(512<<20) {
		t.Errorf("YAML size: %v, %v", cfg.Limit, err)
	}
	if err := yaml.Unmarshal([]byte("memory_limit: none\n"), &cfg); err != nil || cfg.Limit != None() {
		t.Errorf("YAML none: %v, %v", cfg.Limit, err)
	}
	if err := yaml.Unmarshal([]byte("memory_limit: 12 parsecs\n"), &cfg); err == nil || !strings.Contains(err.Error(), "[1:15] memory_limit: memory limit must be") {
		t.Errorf("YAML error %v does not give the value's position [1:15]", err)
	}

	if err := Bytes(32 << 20).Validate(); err == nil || err.Error() != "must be auto, none or at least 64MiB, got 32MiB" {
		t.Errorf("Validate 32MiB = %v", err)
	}
	for _, s := range []Setting{Auto(), None(), Bytes(64 << 20)} {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate %v = %v", s, err)
		}
	}
}

// fakeRuntime records SetMemoryLimit calls the way the runtime answers
// them: the previous limit, -1 only reading.
type fakeRuntime struct {
	limit int64
	sets  []int64
}

func (f *fakeRuntime) SetMemoryLimit(l int64) int64 {
	prev := f.limit
	if l >= 0 {
		f.limit = l
		f.sets = append(f.sets, l)
	}
	return prev
}

func TestApply(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	tests := []struct {
		name     string
		setting  Setting
		dir      string
		env      func(string) (string, bool)
		runtime  int64 // the limit the runtime has before Apply
		want     int64
		wantSets []int64
	}{
		// 90% of the v2-namespace fixture's 512MiB.
		{name: "auto with a cgroup limit", setting: Auto(), dir: "v2-namespace", env: noEnv, runtime: math.MaxInt64,
			want: 483183820, wantSets: []int64{483183820}},
		{name: "auto without a limit", setting: Auto(), dir: "v2-max", env: noEnv, runtime: math.MaxInt64},
		{name: "explicit", setting: Bytes(1 << 30), dir: "v2-namespace", env: noEnv, runtime: math.MaxInt64,
			want: 1 << 30, wantSets: []int64{1 << 30}},
		{name: "none", setting: None(), dir: "v2-namespace", env: noEnv, runtime: math.MaxInt64},
		{name: "GOMEMLIMIT wins", setting: Bytes(1 << 30), dir: "v2-namespace",
			env:     func(k string) (string, bool) { return "700MiB", k == "GOMEMLIMIT" },
			runtime: 700 << 20, want: 700 << 20},
		{name: "GOMEMLIMIT=off", setting: Auto(), dir: "v2-namespace",
			env:     func(k string) (string, bool) { return "off", k == "GOMEMLIMIT" },
			runtime: math.MaxInt64, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRuntime{limit: tt.runtime}
			var logs bytes.Buffer
			got, err := Apply(tt.setting, System{LookupEnv: tt.env, FS: os.DirFS("testdata/" + tt.dir), SetMemoryLimit: rt.SetMemoryLimit},
				slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("limit = %d, want %d", got, tt.want)
			}
			if len(rt.sets) != len(tt.wantSets) || (len(rt.sets) == 1 && rt.sets[0] != tt.wantSets[0]) {
				t.Errorf("SetMemoryLimit calls = %v, want %v", rt.sets, tt.wantSets)
			}
			if !strings.Contains(logs.String(), "memory limit") {
				t.Errorf("nothing logged about the limit: %s", logs.String())
			}
		})
	}
	t.Run("unreadable cgroup", func(t *testing.T) {
		rt := &fakeRuntime{limit: math.MaxInt64}
		_, err := Apply(Auto(), System{LookupEnv: noEnv, FS: os.DirFS("testdata/garbage"), SetMemoryLimit: rt.SetMemoryLimit}, slog.New(slog.DiscardHandler))
		if err == nil || !strings.HasPrefix(err.Error(), "server.memory_limit auto: ") || len(rt.sets) != 0 {
			t.Errorf("err = %v, sets %v; want a server.memory_limit error and no limit set", err, rt.sets)
		}
	})
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestGuard(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	var heap uint64
	reads := 0
	g := NewGuard(GuardConfig{
		Limit: 1000 << 20,
		Heap:  func() uint64 { reads++; return heap },
		Now:   clock.Now,
	})
	// 90% of 1000MiB.
	if g.Threshold() != 900<<20 {
		t.Fatalf("threshold = %d, want %d", g.Threshold(), 900<<20)
	}
	step := func(name string, h uint64, advance time.Duration, wantAllow bool, wantReads int) {
		t.Helper()
		heap = h
		clock.Advance(advance)
		if got := g.Allow(); got != wantAllow {
			t.Errorf("%s: Allow = %v, want %v", name, got, wantAllow)
		}
		if reads != wantReads {
			t.Errorf("%s: %d heap reads, want %d", name, reads, wantReads)
		}
	}
	step("first call reads", 100<<20, 0, true, 1)
	step("within the interval the reading is reused", 950<<20, 4*time.Millisecond, true, 1)
	step("once stale it reads again", 950<<20, time.Millisecond, false, 2)
	step("still above", 950<<20, 5*time.Millisecond, false, 3)
	step("at the threshold exactly", 900<<20, 5*time.Millisecond, true, 4)
	step("just above", 900<<20+1, 5*time.Millisecond, false, 5)
	step("below again", 10<<20, 5*time.Millisecond, true, 6)

	var none *Guard
	if !none.Allow() || NewGuard(GuardConfig{}) != nil {
		t.Error("without a limit every request must be allowed")
	}
}

func TestLiveHeap(t *testing.T) {
	// The runtime always has some live heap after a collection; the value
	// itself depends on the test binary.
	runtime.GC()
	if got := LiveHeap()(); got == 0 {
		t.Errorf("live heap = 0: is %s still a runtime metric?", liveHeapMetric)
	}
}
