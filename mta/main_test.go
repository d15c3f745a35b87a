package mta

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every Server, listener and
// delivery worker must stop when it is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
