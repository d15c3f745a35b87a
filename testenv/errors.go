package testenv

import "errors"

var (
	// ErrNotReady means a server started but did not answer within its
	// readiness bound.
	ErrNotReady = errors.New("testenv: server not ready")
	// ErrStopped means the server was stopped and cannot be used again.
	ErrStopped = errors.New("testenv: server stopped")
	// ErrMailHogAPI means MailHog's HTTP API answered something other than
	// a page of messages.
	ErrMailHogAPI = errors.New("testenv: mailhog api")
)
