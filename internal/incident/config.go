package incident

import (
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is the incidents: section of the config file.
type Config struct {
	// DeclareOn is "page" (default): a page alert declares an incident,
	// or joins the open one of its cascade; "none": only people declare.
	DeclareOn string `yaml:"declare_on"`
	// JoinWindow: a page within this long of an open incident's
	// declaration joins it instead of declaring another. Default 15m.
	JoinWindow units.Duration `yaml:"join_window"`
	// UserAttribute names the span attribute (else resource attribute)
	// that identifies a user (e.g. user.id): the post-mortem estimates the
	// distinct users of the failed requests by it. Empty: not counted.
	UserAttribute string `yaml:"user_attribute"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{DeclareOn: "page", JoinWindow: units.Duration(15 * time.Minute)}
}

// Validate checks the section.
func (c Config) Validate() error {
	switch c.DeclareOn {
	case "", "page", "none":
	default:
		return fmt.Errorf("declare_on: want page or none, got %q", c.DeclareOn)
	}
	if c.JoinWindow < 0 {
		return fmt.Errorf("join_window: must not be negative, got %s", c.JoinWindow)
	}
	return nil
}
