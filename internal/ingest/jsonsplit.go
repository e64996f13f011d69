package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// splitJSON decodes an OTLP/JSON request span by span, after pdata refused
// it whole: each span is decoded with its resource and scope, the spans
// that decode are returned as one request, and the others are counted
// with the place and reason of the first, as partial success reports them
// for protobuf. An error means the body is not an OTLP/JSON request at all
// (syntax, or the wrong shape), which stays a 400.
func splitJSON(body []byte) (ptraceotlp.ExportRequest, int, string, error) {
	out := ptraceotlp.NewExportRequest()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return out, 0, "", err
	}
	var rss []map[string]json.RawMessage
	if err := field(top, &rss, "resourceSpans", "resource_spans"); err != nil {
		return out, 0, "", err
	}
	rejected, first := 0, ""
	dst := out.Traces().ResourceSpans()
	for i, rs := range rss {
		var sss []map[string]json.RawMessage
		if err := field(rs, &sss, "scopeSpans", "scope_spans"); err != nil {
			return out, 0, "", fmt.Errorf("resourceSpans[%d]: %w", i, err)
		}
		for j, ss := range sss {
			var spans []json.RawMessage
			if err := field(ss, &spans, "spans"); err != nil {
				return out, 0, "", fmt.Errorf("resourceSpans[%d].scopeSpans[%d]: %w", i, j, err)
			}
			for k, sp := range spans {
				one, err := oneSpan(rs, ss, sp)
				if err != nil {
					rejected++
					if first == "" {
						first = fmt.Sprintf("resourceSpans[%d].scopeSpans[%d].spans[%d]: %v", i, j, k, err)
					}
					continue
				}
				one.Traces().ResourceSpans().MoveAndAppendTo(dst)
			}
		}
	}
	return out, rejected, first, nil
}

// field decodes the first of names present in m into v (absent: left zero).
func field(m map[string]json.RawMessage, v any, names ...string) error {
	for _, n := range names {
		if raw, ok := m[n]; ok {
			if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				return nil
			}
			if err := json.Unmarshal(raw, v); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			return nil
		}
	}
	return nil
}

// oneSpan decodes span with its resource spans' and scope spans' other
// fields, as a request of one span.
func oneSpan(rs, ss map[string]json.RawMessage, span json.RawMessage) (ptraceotlp.ExportRequest, error) {
	scope := map[string]json.RawMessage{}
	for k, v := range ss {
		if k != "spans" {
			scope[k] = v
		}
	}
	scope["spans"] = json.RawMessage("[" + string(span) + "]")
	res := map[string]json.RawMessage{}
	for k, v := range rs {
		if k != "scopeSpans" && k != "scope_spans" {
			res[k] = v
		}
	}
	sb, err := json.Marshal(scope)
	if err != nil {
		return ptraceotlp.ExportRequest{}, err
	}
	res["scopeSpans"] = json.RawMessage("[" + string(sb) + "]")
	rb, err := json.Marshal(map[string]any{"resourceSpans": []any{res}})
	if err != nil {
		return ptraceotlp.ExportRequest{}, err
	}
	one := ptraceotlp.NewExportRequest()
	if err := one.UnmarshalJSON(rb); err != nil {
		return one, cutInput(err)
	}
	if n := one.Traces().SpanCount(); n != 1 {
		return one, errors.New("not a span")
	}
	return one, nil
}

// cutInput drops the input pdata's errors quote after their message.
func cutInput(err error) error {
	msg, _, _ := bytes.Cut([]byte(err.Error()), []byte(", error found in #"))
	return errors.New(string(msg))
}
