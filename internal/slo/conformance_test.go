package slo_test

import (
	"testing"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/storetest"
)

// TestConformance runs the store conformance suite against the in-memory
// store of the package's tests, so the engine's tests rest on a store that
// behaves like the real ones.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Stores {
		return storetest.Stores{SLO: slo.NewTestMemStore()}
	})
}
