package mta

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// Inbound STARTTLS (RFC 3207): the certificate, its settings and its reload. The connection
// wrapper runs the command and the handshake (starttls.go).

// serverCert holds the certificate served to STARTTLS clients; a reload swaps it whole, so a
// handshake in progress keeps the one it began with.
type serverCert struct {
	cur atomic.Pointer[tls.Certificate]
}

// load reads the pair and swaps it in only if it is valid: a broken file leaves the running
// certificate in place.
func (sc *serverCert) load(certFile, keyFile string) error {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls_cert_file %s, tls_key_file %s: %w", certFile, keyFile, err)
	}
	sc.cur.Store(&c)
	return nil
}

func (sc *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return sc.cur.Load(), nil }

// serverTLSConfig is the handshake's config: TLS 1.2 or later (RFC 8996 deprecates 1.0 and 1.1),
// Go's default cipher suites, which are the modern AEAD ones for 1.2.
func (sc *serverCert) serverTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: sc.get}
}

// setupTLS loads the configured certificate; without one, STARTTLS is neither advertised nor
// accepted (go-smtp answers 502).
func (s *Server) setupTLS() error {
	if s.cfg.TLSCertFile == "" {
		return nil
	}
	s.cert = &serverCert{}
	if err := s.cert.load(s.cfg.TLSCertFile, s.cfg.TLSKeyFile); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// reloadCertificate reads cfg's certificate again (SIGHUP: a renewed certificate under the same
// names is picked up too). Turning STARTTLS on or off needs a restart: every session reads
// s.cert without a lock.
func (s *Server) reloadCertificate(cfg Config) error {
	switch {
	case s.cert == nil && cfg.TLSCertFile == "":
		return nil
	case s.cert == nil || cfg.TLSCertFile == "":
		s.log.Warn("turning STARTTLS on or off needs a restart; not applied")
		return nil
	}
	if err := s.cert.load(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
		s.log.Error("certificate not reloaded; the running one stays", "err", err)
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	s.log.Info("certificate reloaded", "cert", cfg.TLSCertFile)
	return nil
}
