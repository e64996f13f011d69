package shed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultLevelFlag is the flag read for the shed level when
// LevelConfig.Flag is empty.
const DefaultLevelFlag = "shed.sheddable_percent"

// ErrFlagNotFound is returned by PollLevel when the flag does not exist;
// the shed level is then 0.
var ErrFlagNotFound = errors.New("flag not found")

// LevelConfig says where to read the shed level: a tailgate flag (or any
// OFREP server's) whose value is the percentage of sheddable requests to
// refuse.
type LevelConfig struct {
	// URL is the OFREP server's base URL, such as http://tailgate:8080;
	// the flag is evaluated at {URL}/ofrep/v1/evaluate/flags/{Flag}.
	// Empty disables reading the level.
	URL string
	// Flag is the flag key; default DefaultLevelFlag.
	Flag string
	// Interval is the time between polls; default 10s.
	Interval time.Duration
	// Client sends the requests; default a client with a 5s timeout.
	Client *http.Client
	// Token, when set, is sent as a bearer token (tailgate's scope
	// flags:evaluate).
	Token string
	// TargetingKey is the evaluation context's targetingKey, so targeting
	// rules can give services different levels; default "shed".
	TargetingKey string
	// Context holds more evaluation context attributes (such as
	// "service"); they must encode as JSON.
	Context map[string]any
}

func (c *LevelConfig) validate() []error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("level.url: want an http or https URL, got %q", c.URL))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("level.interval: must not be negative, got %s", c.Interval))
	}
	return errs
}

// levelReader evaluates the level flag over OFREP.
type levelReader struct {
	now      func() time.Time
	endpoint string
	body     []byte
	client   *http.Client
	auth     string
	interval time.Duration
	flag     string
}

func newLevelReader(cfg LevelConfig, now func() time.Time) (*levelReader, error) {
	if cfg.Flag == "" {
		cfg.Flag = DefaultLevelFlag
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.TargetingKey == "" {
		cfg.TargetingKey = "shed"
	}
	evalCtx := make(map[string]any, len(cfg.Context)+1)
	for k, v := range cfg.Context {
		evalCtx[k] = v
	}
	evalCtx["targetingKey"] = cfg.TargetingKey
	body, err := json.Marshal(map[string]any{"context": evalCtx})
	if err != nil {
		return nil, fmt.Errorf("level.context: %w", err)
	}
	lr := &levelReader{
		now:      now,
		endpoint: strings.TrimRight(cfg.URL, "/") + "/ofrep/v1/evaluate/flags/" + url.PathEscape(cfg.Flag),
		body:     body,
		client:   cfg.Client,
		interval: cfg.Interval,
		flag:     cfg.Flag,
	}
	if cfg.Token != "" {
		lr.auth = "Bearer " + cfg.Token
	}
	return lr, nil
}

// ofrepResponse is the union of OFREP's evaluation success and failure
// bodies.
type ofrepResponse struct {
	Key          string          `json:"key"`
	Value        json.RawMessage `json:"value"`
	Reason       string          `json:"reason"`
	Variant      string          `json:"variant"`
	ErrorCode    string          `json:"errorCode"`
	ErrorDetails string          `json:"errorDetails"`
}

// evaluate asks for the flag once. It returns the level in percent, and
// after a 429 how long the server asked to wait.
func (lr *levelReader) evaluate(ctx context.Context) (pct float64, wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lr.endpoint, bytes.NewReader(lr.body))
	if err != nil {
		return 0, 0, fmt.Errorf("evaluate flag %q: %w", lr.flag, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if lr.auth != "" {
		req.Header.Set("Authorization", lr.auth)
	}
	resp, err := lr.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("evaluate flag %q: %w", lr.flag, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, 0, fmt.Errorf("evaluate flag %q: read response: %w", lr.flag, err)
	}
	var r ofrepResponse
	jsonErr := json.Unmarshal(raw, &r)
	switch resp.StatusCode {
	case http.StatusOK:
		if jsonErr != nil {
			return 0, 0, fmt.Errorf("evaluate flag %q: decode response: %w", lr.flag, jsonErr)
		}
		return levelValue(lr.flag, r.Value)
	case http.StatusNotFound:
		return 0, 0, fmt.Errorf("evaluate flag %q: %w", lr.flag, ErrFlagNotFound)
	case http.StatusTooManyRequests:
		wait = retryAfter(resp.Header.Get("Retry-After"), lr.now())
	}
	msg := resp.Status
	if jsonErr == nil && r.ErrorCode != "" {
		msg += ": " + r.ErrorCode
		if r.ErrorDetails != "" {
			msg += ": " + r.ErrorDetails
		}
	}
	return 0, wait, fmt.Errorf("evaluate flag %q: %s", lr.flag, msg)
}

// levelValue reads a flag value as a percentage. A missing value is the
// protocol's "use the code default", which for the shed level is 0.
func levelValue(flag string, v json.RawMessage) (float64, time.Duration, error) {
	if len(v) == 0 || string(v) == "null" {
		return 0, 0, nil
	}
	var p float64
	if err := json.Unmarshal(v, &p); err != nil {
		return 0, 0, fmt.Errorf("evaluate flag %q: value %s is not a number", flag, v)
	}
	if p < 0 || p > 100 {
		return 0, 0, fmt.Errorf("evaluate flag %q: value %g is not a percentage", flag, p)
	}
	return p, 0, nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	for _, layout := range []string{http.TimeFormat, time.RFC3339} {
		if t, err := time.Parse(layout, h); err == nil {
			return t.Sub(now)
		}
	}
	return 0
}

// PollLevel evaluates the level flag once and sets the shed level from
// it. On failure the level stays as it was, except when the flag does not
// exist (ErrFlagNotFound): then it is 0. Without Config.Level.URL it does
// nothing.
func (s *Shedder) PollLevel(ctx context.Context) error {
	if s.level == nil {
		return nil
	}
	_, err := s.pollLevel(ctx)
	return err
}

func (s *Shedder) pollLevel(ctx context.Context) (time.Duration, error) {
	p, wait, err := s.level.evaluate(ctx)
	if err != nil && !errors.Is(err, ErrFlagNotFound) {
		return wait, err
	}
	s.SetSheddablePercent(p)
	return 0, err
}

// run polls the level until ctx is done: at once, then every interval, or
// later when the server asks to wait.
func (lr *levelReader) run(ctx context.Context, s *Shedder) {
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait, err := s.pollLevel(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// Once per outage: a poll every few seconds must not flood
			// the log.
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug
			}
			s.log.Log(ctx, lvl, "shed level not read, keeping the last one", "flag", lr.flag, "level", s.SheddablePercent(), "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("shed level read again", "flag", lr.flag, "level", s.SheddablePercent())
			failing = false
		}
		t.Reset(max(lr.interval, wait))
	}
}
