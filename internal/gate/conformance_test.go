package gate_test

import (
	"testing"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/store/storetest"
)

// TestConformance runs the store conformance suite against MemoryStore,
// the gate's store when the daemon runs without storage.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Stores {
		m := gate.NewMemoryStore()
		return storetest.Stores{Gate: m, Audit: m}
	})
}
