// Package testenv runs third-party servers in-process, for tests and for the
// embedded stack of `mtastress replay` and `mtastress dev`: nats-server with
// JetStream (one server, or a three-server cluster), MailHog (SMTP, API and
// web UI) and a recording SMTP sink that stands in for the next hop.
//
// Every server listens on 127.0.0.1 on a random port, is ready when its Start
// function returns, prints nothing, and has an idempotent Stop.
//
// testenv imports no other package of this module.
package testenv
