package gate

import "time"

// Override lets changes through that the policy would stop: time-boxed,
// audited and revocable. An override stops applying by itself at
// ExpiresAt.
type Override struct {
	ID            string        `json:"id"`
	Service       string        `json:"service"`
	ChangeClasses []ChangeClass `json:"change_classes"`
	Reason        string        `json:"reason"`
	ApprovedBy    string        `json:"approved_by"`
	// CreatedBy is the authenticated identity that created it.
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	// Status is active, expired or revoked as of when it was read.
	Status OverrideStatus `json:"status,omitempty"`
}

// OverrideStatus is an override's state at a moment.
type OverrideStatus string

// The states of an override.
const (
	OverrideActive  OverrideStatus = "active"
	OverrideExpired OverrideStatus = "expired"
	OverrideRevoked OverrideStatus = "revoked"
)

// StatusAt returns the override's state at now.
func (o *Override) StatusAt(now time.Time) OverrideStatus {
	switch {
	case o.RevokedAt != nil && !now.Before(*o.RevokedAt):
		return OverrideRevoked
	case !now.Before(o.ExpiresAt):
		return OverrideExpired
	default:
		return OverrideActive
	}
}

// ActiveAt reports whether the override applies at now.
func (o *Override) ActiveAt(now time.Time) bool {
	return !now.Before(o.CreatedAt) && o.StatusAt(now) == OverrideActive
}

// covers reports whether the override applies to a change of service and
// class.
func (o *Override) covers(service string, class ChangeClass) bool {
	if o.Service != service {
		return false
	}
	for _, c := range o.ChangeClasses {
		if c == class {
			return true
		}
	}
	return false
}
