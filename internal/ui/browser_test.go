package ui_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// updateScreenshot rewrites docs/dashboard.png, the README's picture, from
// the live browser test.
var updateScreenshot = flag.Bool("update-screenshot", false, "write the live dashboard's screenshot to docs/dashboard.png")

// chromiumPath is Debian's chromium, which .ci/run installs;
// TAILGATE_CHROMIUM names another binary.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TAILGATE_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Skipf("browser test skipped: no Chromium at %s (apt-get install chromium, or set TAILGATE_CHROMIUM): %v", p, err)
	}
	return p
}

// artifactDir is where screenshots go: $TAILGATE_ARTIFACTS, or a
// temporary directory that the test logs.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TAILGATE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser is a headless Chromium tab on a fresh profile, with the page's
// console errors and exceptions collected.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string // screenshots

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	exe := chromiumPath(t)
	// The profile lives outside t.TempDir: Chromium's helpers may still
	// write to it for a moment after the browser stops.
	profile, err := os.MkdirTemp("", "tailgate-ui-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, base: base, dir: artifactDir(t)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_ = chromedp.Cancel(cctx)
		cancel()
		cancelCtx()
		cancelAlloc()
		wg.Wait()
		for range 50 {
			if os.RemoveAll(profile) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Start the browser, then follow its console until the tab closes.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// The screenshots' size, whatever the window's decorations take.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("set the viewport: %v", err)
	}
	msgs := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	})
	return b
}

// open loads the dashboard at the given hash route, refreshing every second.
func (b *browser) open(route string) {
	b.t.Helper()
	if err := chromedp.Do(b.timeout(30*time.Second), chromedp.Navigate(b.base+"/?refresh=1#"+route)); err != nil {
		b.t.Fatalf("open %s: %v", route, err)
	}
}

// route switches views without reloading the page.
func (b *browser) route(route string) {
	b.t.Helper()
	b.eval(fmt.Sprintf("location.hash = %q", route))
}

func (b *browser) timeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	b.t.Cleanup(cancel)
	return ctx
}

// wait polls a JavaScript expression until it is truthy.
func (b *browser) wait(what, expr string, d time.Duration) {
	b.t.Helper()
	_, err := chromedp.Run(b.timeout(d+5*time.Second), chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("waiting for %s (%s): %v\nconsole problems: %v", what, expr, err, b.consoleProblems())
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value.
func (b *browser) eval(expr string) json.RawMessage {
	b.t.Helper()
	v, err := chromedp.Run(b.timeout(20*time.Second), chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func evalAs[T any](b *browser, expr string) T {
	b.t.Helper()
	var v T
	raw := b.eval(expr)
	if err := json.Unmarshal(raw, &v); err != nil {
		b.t.Fatalf("decode %s = %s: %v", expr, raw, err)
	}
	return v
}

// screenshot saves the viewport as name.png in the artefact directory.
func (b *browser) screenshot(name string) []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.timeout(20*time.Second), chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return nil
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if dir := os.Getenv("TAILGATE_SCREENSHOT_DIR"); dir != "" {
		// Kept after the test, to look at.
		p = filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Logf("screenshot: %s", p)
	return png
}

func (b *browser) consoleProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// checkConsole fails the test for exceptions and console errors, such as
// a refused Content-Security-Policy or a failed module import. Errors of
// requests the test itself refused (401) are expected where allowed says.
func (b *browser) checkConsole(allowed ...string) {
	b.t.Helper()
	for _, p := range b.consoleProblems() {
		ok := false
		for _, a := range allowed {
			if strings.Contains(p, a) {
				ok = true
			}
		}
		if !ok {
			b.t.Errorf("browser console: %s", p)
		}
	}
}

// jsToFixed1 formats x as JavaScript's Number.prototype.toFixed(1) does:
// the exact binary value rounded to one decimal, ties away from zero
// (ECMA-262 picks the larger n of the magnitude). It is computed with exact
// big-float arithmetic, independently of the dashboard's code.
func jsToFixed1(x float64) string {
	neg := x < 0
	a := new(big.Float).SetPrec(256).SetFloat64(x)
	a.Abs(a)
	a.Mul(a, big.NewFloat(10).SetPrec(256))
	a.Add(a, big.NewFloat(0.5).SetPrec(256))
	n, _ := a.Int(nil) // truncation of a positive number: the floor
	s := n.String()
	if len(s) < 2 {
		s = "0" + s
	}
	out := s[:len(s)-1] + "." + s[len(s)-1:]
	if neg {
		out = "-" + out
	}
	return out
}

func TestJSToFixed1(t *testing.T) {
	tests := []struct {
		x    float64
		want string
	}{
		{0, "0.0"}, {1, "1.0"}, {12.25, "12.3"}, {-12.25, "-12.3"}, {0.05, "0.1"},
		{99.94999, "99.9"}, {-275, "-275.0"}, {100, "100.0"}, {1.005, "1.0"}, // 1.005 is 1.00499999999999989... in binary
		{-0.04, "-0.0"}, {0.25, "0.3"},
	}
	for _, tt := range tests {
		if got := jsToFixed1(tt.x); got != tt.want {
			t.Errorf("jsToFixed1(%v) = %q, want %q", tt.x, got, tt.want)
		}
	}
}
