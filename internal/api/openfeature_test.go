package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/flags"
)

// ofrepProvider is a minimal OpenFeature provider for OFREP, written from
// the protocol's OpenAPI (open-feature/protocol service/openapi.yaml
// 0.3.0), not from tailgate's code: the contrib module's OFREP provider is
// not served by the module proxy here.
type ofrepProvider struct {
	base, token string
	client      *http.Client
}

func (p *ofrepProvider) Metadata() openfeature.Metadata {
	return openfeature.Metadata{Name: "ofrep-test"}
}
func (p *ofrepProvider) Hooks() []openfeature.Hook { return nil }

// evaluate POSTs the flattened context and returns the value, or the
// resolution error the OFREP answer maps to.
func (p *ofrepProvider) evaluate(ctx context.Context, flag string, flat openfeature.FlattenedContext) (any, openfeature.ProviderResolutionDetail) {
	body, _ := json.Marshal(map[string]any{"context": map[string]any(flat)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/ofrep/v1/evaluate/flags/"+flag, bytes.NewReader(body))
	if err != nil {
		return nil, openfeature.ProviderResolutionDetail{ResolutionError: openfeature.NewGeneralResolutionError(err.Error()), Reason: openfeature.ErrorReason}
	}
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, openfeature.ProviderResolutionDetail{ResolutionError: openfeature.NewGeneralResolutionError(err.Error()), Reason: openfeature.ErrorReason}
	}
	defer resp.Body.Close()
	var out struct {
		Value        any            `json:"value"`
		Reason       string         `json:"reason"`
		Variant      string         `json:"variant"`
		ErrorCode    string         `json:"errorCode"`
		ErrorDetails string         `json:"errorDetails"`
		Metadata     map[string]any `json:"metadata"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	fail := func(e openfeature.ResolutionError) (any, openfeature.ProviderResolutionDetail) {
		return nil, openfeature.ProviderResolutionDetail{ResolutionError: e, Reason: openfeature.ErrorReason}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return out.Value, openfeature.ProviderResolutionDetail{Reason: openfeature.Reason(out.Reason), Variant: out.Variant, FlagMetadata: out.Metadata}
	case resp.StatusCode == http.StatusNotFound:
		return fail(openfeature.NewFlagNotFoundResolutionError(out.ErrorDetails))
	case out.ErrorCode == "TARGETING_KEY_MISSING":
		return fail(openfeature.NewTargetingKeyMissingResolutionError(out.ErrorDetails))
	case out.ErrorCode == "INVALID_CONTEXT":
		return fail(openfeature.NewInvalidContextResolutionError(out.ErrorDetails))
	case out.ErrorCode == "PARSE_ERROR":
		return fail(openfeature.NewParseErrorResolutionError(out.ErrorDetails))
	default:
		return fail(openfeature.NewGeneralResolutionError(fmt.Sprintf("HTTP %d %s", resp.StatusCode, out.ErrorDetails)))
	}
}

func (p *ofrepProvider) BooleanEvaluation(ctx context.Context, flag string, def bool, flat openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	v, d := p.evaluate(ctx, flag, flat)
	b, ok := v.(bool)
	if d.ResolutionError == (openfeature.ResolutionError{}) && !ok {
		d = openfeature.ProviderResolutionDetail{ResolutionError: openfeature.NewTypeMismatchResolutionError("not a boolean"), Reason: openfeature.ErrorReason}
	}
	if d.ResolutionError != (openfeature.ResolutionError{}) {
		b = def
	}
	return openfeature.BoolResolutionDetail{Value: b, ProviderResolutionDetail: d}
}

func (p *ofrepProvider) StringEvaluation(ctx context.Context, flag string, def string, flat openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	v, d := p.evaluate(ctx, flag, flat)
	s, ok := v.(string)
	if d.ResolutionError == (openfeature.ResolutionError{}) && !ok {
		d = openfeature.ProviderResolutionDetail{ResolutionError: openfeature.NewTypeMismatchResolutionError("not a string"), Reason: openfeature.ErrorReason}
	}
	if d.ResolutionError != (openfeature.ResolutionError{}) {
		s = def
	}
	return openfeature.StringResolutionDetail{Value: s, ProviderResolutionDetail: d}
}

func (p *ofrepProvider) FloatEvaluation(ctx context.Context, flag string, def float64, flat openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	v, d := p.evaluate(ctx, flag, flat)
	f, ok := v.(float64)
	if d.ResolutionError != (openfeature.ResolutionError{}) || !ok {
		f = def
	}
	return openfeature.FloatResolutionDetail{Value: f, ProviderResolutionDetail: d}
}

func (p *ofrepProvider) IntEvaluation(ctx context.Context, flag string, def int64, flat openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	v, d := p.evaluate(ctx, flag, flat)
	f, ok := v.(float64)
	i := int64(f)
	if d.ResolutionError != (openfeature.ResolutionError{}) || !ok {
		i = def
	}
	return openfeature.IntResolutionDetail{Value: i, ProviderResolutionDetail: d}
}

func (p *ofrepProvider) ObjectEvaluation(ctx context.Context, flag string, def any, flat openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	v, d := p.evaluate(ctx, flag, flat)
	if d.ResolutionError != (openfeature.ResolutionError{}) {
		v = def
	}
	return openfeature.InterfaceResolutionDetail{Value: v, ProviderResolutionDetail: d}
}

// TestOpenFeatureSDK evaluates tailgate's flags through the official
// OpenFeature Go SDK, with bearer auth, as an application would.
func TestOpenFeatureSDK(t *testing.T) {
	tokens := []auth.Token{{Name: "checkout-app", SHA256: auth.HashToken(flagEvalToken), Scopes: []auth.Scope{auth.ScopeFlagsEval}}}
	e := newFlagEnv(t, auth.Config{Tokens: tokens})
	ctx := t.Context()
	api := isolated.NewAPI()
	t.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	if err := api.SetProviderAndWait(ctx, &ofrepProvider{base: e.srv.URL, token: flagEvalToken, client: e.srv.Client()}); err != nil {
		t.Fatal(err)
	}
	client := api.NewClient()

	enterprise := openfeature.NewEvaluationContext("user-1", map[string]any{"plan": "enterprise"})
	d, err := client.BooleanValueDetails(ctx, "recommendations", false, enterprise)
	if err != nil || !d.Value || d.Reason != openfeature.TargetingMatchReason || d.Variant != "enabled" {
		t.Errorf("recommendations for an enterprise user: %+v, %v; want true by TARGETING_MATCH", d, err)
	}
	theme, err := client.StringValue(ctx, "theme", "none", openfeature.NewEvaluationContext("user-1", nil))
	if err != nil || theme != "#000" {
		t.Errorf("theme: %q, %v; want #000", theme, err)
	}
	limits, err := client.ObjectValue(ctx, "limits", nil, openfeature.NewEvaluationContext("user-1", nil))
	if m, ok := limits.(map[string]any); err != nil || !ok || m["rps"] != float64(10) {
		t.Errorf("limits: %#v, %v; want {rps: 10}", limits, err)
	}
	// The SDK maps OFREP's errors to its own and falls back to the code's
	// default.
	missing, err := client.BooleanValueDetails(ctx, "no-such-flag", true, enterprise)
	if err == nil || !missing.Value || missing.ErrorCode != openfeature.FlagNotFoundCode {
		t.Errorf("unknown flag: %+v, %v; want the default with FLAG_NOT_FOUND", missing, err)
	}
	noKey, err := client.BooleanValueDetails(ctx, "recommendations", true, openfeature.NewTargetlessEvaluationContext(map[string]any{"plan": "free"}))
	if err == nil || noKey.ErrorCode != openfeature.TargetingKeyMissingCode {
		t.Errorf("rollout without a targeting key: %+v, %v; want TARGETING_KEY_MISSING", noKey, err)
	}
	// A flip is what the SDK sees next.
	if _, err := e.svc.Flip(ctx, "recommendations", "disabled", flags.Op{Actor: "oncall", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	d, err = client.BooleanValueDetails(ctx, "recommendations", true, enterprise)
	if err != nil || d.Value || d.Variant != "disabled" || d.Reason != openfeature.StaticReason || d.FlagMetadata["forced_by"] != "operator" {
		t.Errorf("after the flip: %+v, %v; want false, STATIC, forced by the operator", d, err)
	}
	// Without the token, the provider's calls are refused.
	bare := isolated.NewAPI()
	t.Cleanup(func() { _ = bare.Shutdown(context.Background()) })
	if err := bare.SetProviderAndWait(ctx, &ofrepProvider{base: e.srv.URL, client: e.srv.Client()}); err != nil {
		t.Fatal(err)
	}
	v, err := bare.NewClient().BooleanValue(ctx, "recommendations", true, enterprise)
	if err == nil || !v {
		t.Errorf("no token: %v, %v; want the default and an error", v, err)
	}
}
