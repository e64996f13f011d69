package gate

import "fmt"

// Verdict is the gate's answer to a change: allow it, allow it only as a
// canary, or deny it.
type Verdict int

// The verdicts, from most to least permissive. The zero value is invalid so
// that a forgotten assignment never reads as "allow".
const (
	Allow Verdict = iota + 1
	Canary
	Deny
)

// String returns "allow", "canary" or "deny".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Canary:
		return "canary"
	case Deny:
		return "deny"
	default:
		return fmt.Sprintf("verdict(%d)", int(v))
	}
}

// ParseVerdict reads a verdict's text form.
func ParseVerdict(s string) (Verdict, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "canary":
		return Canary, nil
	case "deny":
		return Deny, nil
	default:
		return 0, fmt.Errorf("must be allow, canary or deny, got %q", s)
	}
}

// MarshalText implements encoding.TextMarshaler.
func (v Verdict) MarshalText() ([]byte, error) {
	switch v {
	case Allow, Canary, Deny:
		return []byte(v.String()), nil
	default:
		return nil, fmt.Errorf("invalid verdict %d", int(v))
	}
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verdict) UnmarshalText(b []byte) error {
	p, err := ParseVerdict(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// ChangeClass says what kind of change asks to ship. The built-in classes
// are feature, fix, security, rollback and config; a policy may declare
// more (change_classes).
type ChangeClass string

// The built-in change classes.
const (
	Feature  ChangeClass = "feature"
	Fix      ChangeClass = "fix" // a P0 fix in the Workbook's words
	Security ChangeClass = "security"
	Rollback ChangeClass = "rollback"
	Config   ChangeClass = "config"
)

// BuiltinClasses returns the change classes every policy knows, in a fixed
// order.
func BuiltinClasses() []ChangeClass { return []ChangeClass{Feature, Fix, Security, Rollback, Config} }

// validClassName reports whether a declared change class looks like one:
// short, lower case, safe as a metric label and in a URL.
func validClassName(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// FailMode says what a change class gets when the SLO data is stale or
// missing.
type FailMode string

// The fail modes.
const (
	FailOpen   FailMode = "open"   // allow, saying the data was stale
	FailClosed FailMode = "closed" // deny, saying the data was stale
)

// defaultFailMode is the Workbook-minded default: changes that repair
// (rollback, fix, security) go through blind; changes that add risk do not.
func defaultFailMode(c ChangeClass) FailMode {
	switch c {
	case Rollback, Fix, Security:
		return FailOpen
	default:
		return FailClosed
	}
}

// Severity is an alert's severity as the SLO engine reports it.
type Severity string

// The severities of burn-rate alerts.
const (
	SeverityPage   Severity = "page"
	SeverityTicket Severity = "ticket"
)

// rank orders severities so that "ticket or worse" includes pages.
func (s Severity) rank() int {
	switch s {
	case SeverityPage:
		return 2
	case SeverityTicket:
		return 1
	default:
		return 0
	}
}
