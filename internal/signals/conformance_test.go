package signals_test

import (
	"testing"

	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/store/storetest"
)

// TestConformance runs the store conformance suite against the in-memory
// store of the package's tests.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Stores {
		return storetest.Stores{Signals: signals.NewTestMemStore()}
	})
}
