package main

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestDemo runs the whole demo in process on a shortened schedule and
// checks its summary: the check of issue 6.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a 45s demo")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(t.Context(), []string{"tailgate", "demo", "--duration", "45s", "--no-tui", "--api", "127.0.0.1:0", "--seed", "42"}, nil, &out, &errOut)
	t.Logf("demo took %s; output:\n%s", time.Since(start).Round(time.Second), out.String())
	if code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, errOut.String())
	}
	text := out.String()
	num := func(s string) int {
		n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
		if err != nil {
			t.Fatalf("number %q: %v", s, err)
		}
		return n
	}

	m := regexp.MustCompile(`error traces kept +([\d,]+) of ([\d,]+) \(`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no error-trace line in the summary")
	}
	if kept, sent := num(m[1]), num(m[2]); sent == 0 || kept != sent {
		t.Errorf("error traces kept %d of %d, want all of them (and some sent)", kept, sent)
	}

	m = regexp.MustCompile(`OK traces kept +([\d,]+) of ([\d,]+) \(`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no OK-trace line in the summary")
	}
	kept, sent := num(m[1]), num(m[2])
	// Binomial: 5% of n with a tolerance of four standard deviations.
	want, tol := 0.05*float64(sent), 4*math.Sqrt(float64(sent)*0.05*0.95)
	if sent < 500 || math.Abs(float64(kept)-want) > tol {
		t.Errorf("OK traces kept %d of %d, want %.0f ± %.0f", kept, sent, want, tol)
	}

	for _, line := range []string{
		"page alert fired during the failure: yes",
		"gate denied a feature during the failure: yes",
		"checks               PASS",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("summary lacks %q", line)
		}
	}
	// The story's other beats, as plain log lines.
	for _, re := range []string{
		`\* GATE checkout feature: ALLOW \(within-budget\)`,
		`\* phase failure: payments 2\.4\.0 deployed`,
		`\* ALERT page-1h FIRING on checkout-availability \(page\)`,
		`\* phase recovery: payments rolled back to 2\.3\.1`,
		`\* GATE checkout feature: ALLOW \(override\)`,
		`\* canary: payments 2\.4\.1 \(a hotfix\) takes 1% of charges`,
		`\* canary: payments 2\.4\.1 steps up to 10% of charges \(verdict so far: `,
		`\* canary payments 2\.4\.1 FAILED at 10% after \d+ canary requests \(\d+s\): .*; rolled back to 2\.3\.1`,
		`\* GATE payments 2\.4\.1 feature: deny \(canary-failed\)`,
		`canary +payments 2\.4\.1 \(1% then 10% of charges\) vs 2\.3\.1: FAIL at 10% after \d+ canary requests and \d+s`,
		`dashboard +http://127\.0\.0\.1:\d+/`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output lacks %s", re)
		}
	}
	if strings.Contains(text, "\x1b[") {
		t.Error("--no-tui output holds escape sequences")
	}
}

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no rate", []string{"--rps", "0"}, "--rps must be"},
		{"negative phase", []string{"--calm", "-1s"}, "phase calm: must not be negative"},
		{"nothing to play", []string{"--calm", "0s", "--failure", "0s", "--recovery", "0s"}, "nothing to play"},
		{"negative duration", []string{"--duration", "-5s"}, "--duration must be positive"},
		{"argument", []string{"now"}, `unexpected argument "now"`},
		{"unknown flag", []string{"--speed", "2"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), append([]string{"tailgate", "demo"}, tt.args...), nil, &out, &errOut)
			if code != exitUsage || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), exitUsage, tt.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"tailgate", "demo", "--help"}, nil, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "-no-tui") || errOut.Len() != 0 {
		t.Errorf("--help: exit %d, stdout %q, stderr %q; want 0 with the flags on stdout", code, out.String(), errOut.String())
	}
}
