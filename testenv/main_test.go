package testenv

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// MailHog's API starts these per CreateAPI and gives no way to stop
		// them (see the TODO on MailHog). Everything else must be gone.
		goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/api.CreateAPI.func1"),
		goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/api.createAPIv1.func1"),
		goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/api.createAPIv2.func1"),
		goleak.IgnoreAnyFunction("github.com/mailhog/MailHog-Server/websockets.(*Hub).run"),
	)
}

// eventually polls cond every 10 ms until it holds or timeout passes, then
// fails with what cond last reported.
func eventually(t *testing.T, timeout time.Duration, cond func() (ok bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testContext is a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
