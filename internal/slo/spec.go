package slo

import "github.com/tailgate-sre/tailgate/internal/units"

// Spec is one SLO in tailgate's own format (an entry of the slos: list).
type Spec struct {
	Name      string         `yaml:"name"`
	Service   string         `yaml:"service"`
	Objective float64        `yaml:"objective"`
	Window    units.Duration `yaml:"window"`
	Calendar  string         `yaml:"calendar"`
	SLI       SLISpec        `yaml:"sli"`
}

// SLISpec says which requests count and which are good.
type SLISpec struct {
	Kind      string            `yaml:"kind"`
	Threshold units.Duration    `yaml:"threshold"`
	Filter    map[string]string `yaml:"filter"`
}
