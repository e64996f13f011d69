package flags

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Reason says why a flag evaluated to its value, in OFREP's vocabulary.
type Reason string

// The OFREP reasons tailgate gives.
const (
	// ReasonStatic: the flag has no targeting that applied (its default
	// variant), or a variant is forced for everyone.
	ReasonStatic Reason = "STATIC"
	// ReasonTargetingMatch: a targeting rule with a fixed variant matched.
	ReasonTargetingMatch Reason = "TARGETING_MATCH"
	// ReasonSplit: a percentage rollout chose the variant.
	ReasonSplit Reason = "SPLIT"
)

// ErrorCode is an OFREP evaluation error code.
type ErrorCode string

// The OFREP error codes.
const (
	ErrFlagNotFound        ErrorCode = "FLAG_NOT_FOUND"
	ErrTargetingKeyMissing ErrorCode = "TARGETING_KEY_MISSING"
	ErrInvalidContext      ErrorCode = "INVALID_CONTEXT"
	ErrParse               ErrorCode = "PARSE_ERROR"
	ErrGeneral             ErrorCode = "GENERAL"
)

// EvalError is an evaluation that failed, with its OFREP code.
type EvalError struct {
	Code   ErrorCode
	Detail string
}

func (e *EvalError) Error() string { return string(e.Code) + ": " + e.Detail }

// Context is an OpenFeature evaluation context: the targeting key (empty
// when the caller sent none) and the other properties.
type Context struct {
	TargetingKey string
	Attributes   map[string]any
}

// ContextFromJSON builds a Context from a decoded OFREP `context` object.
// A targetingKey that is present must be a string.
func ContextFromJSON(m map[string]any) (Context, error) {
	c := Context{Attributes: m}
	if tk, ok := m["targetingKey"]; ok {
		s, isString := tk.(string)
		if !isString {
			return c, &EvalError{Code: ErrInvalidContext, Detail: fmt.Sprintf("targetingKey must be a string, got %s", jsonKind(tk))}
		}
		c.TargetingKey = s
	}
	return c, nil
}

// Forced is a variant served to everyone, whatever the targeting says,
// and who forced it.
type Forced struct {
	Variant string `json:"variant"`
	// By is "operator" or "kill_switch".
	By string `json:"by"`
}

// Result is a successful evaluation.
type Result struct {
	Key     string
	Value   any
	Variant string
	Reason  Reason
	// ForcedBy is set when a forced variant decided.
	ForcedBy string
}

// Evaluate evaluates f for c. forced, when not nil, wins over targeting.
func (f *Flag) Evaluate(c Context, forced *Forced) (Result, error) {
	res := Result{Key: f.cfg.Key}
	if forced != nil && f.HasVariant(forced.Variant) {
		res.Variant, res.Reason, res.ForcedBy = forced.Variant, ReasonStatic, forced.By
		res.Value = f.variants[forced.Variant]
		return res, nil
	}
	for i := range f.rules {
		r := &f.rules[i]
		if !r.matches(c) {
			continue
		}
		if r.variant != "" {
			res.Variant, res.Reason = r.variant, ReasonTargetingMatch
			res.Value = f.variants[r.variant]
			return res, nil
		}
		if c.TargetingKey == "" {
			return res, &EvalError{Code: ErrTargetingKeyMissing,
				Detail: fmt.Sprintf("flag %q rolls out by percentage and needs the context's targetingKey", f.cfg.Key)}
		}
		b := bucket(f.cfg.Key, c.TargetingKey)
		i, _ := slices.BinarySearchFunc(r.bounds, b, func(bound, b uint32) int {
			if bound <= b {
				return -1
			}
			return 1
		})
		res.Variant, res.Reason = r.names[i], ReasonSplit
		res.Value = f.variants[r.names[i]]
		return res, nil
	}
	res.Variant, res.Reason = f.cfg.DefaultVariant, ReasonStatic
	res.Value = f.variants[f.cfg.DefaultVariant]
	return res, nil
}

// bucket maps (flag, targeting key) to [0, rolloutScale), uniformly and
// the same way on every instance.
func bucket(flag, targetingKey string) uint32 {
	h := sha256.New()
	h.Write([]byte(flag))
	h.Write([]byte{0})
	h.Write([]byte(targetingKey))
	var sum [sha256.Size]byte
	x := binary.BigEndian.Uint64(h.Sum(sum[:0]))
	hi, _ := bits.Mul64(x, rolloutScale)
	return uint32(hi)
}

func (r *rule) matches(c Context) bool {
	w := r.when
	if w == nil {
		return true
	}
	var v any
	var ok bool
	if w.Attribute == "targetingKey" {
		v, ok = c.TargetingKey, c.TargetingKey != ""
	} else {
		v, ok = c.Attributes[w.Attribute]
	}
	if !ok {
		return false
	}
	if len(w.In) > 0 && !slices.ContainsFunc(w.In, func(want any) bool { return equal(v, want) }) {
		return false
	}
	if slices.ContainsFunc(w.NotIn, func(bad any) bool { return equal(v, bad) }) {
		return false
	}
	return true
}

// equal compares a context value with a configured one: numbers by value
// whatever their Go type (JSON decodes float64, YAML int64 or uint64),
// everything else by ==.
func equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch a.(type) {
	case string, bool:
		return a == b
	}
	return false
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case int:
		return float64(x), true
	case float32:
		return float64(x), !math.IsNaN(float64(x))
	}
	return 0, false
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
