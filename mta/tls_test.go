package mta

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testCert writes a self-signed certificate for name into dir and returns the file names and
// a pool that trusts it. serial tells two certificates for the same name apart.
func testCert(t *testing.T, dir, name string, serial int64) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)}, // next hops in tests are 127.0.0.1:port
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	c, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(c)
	return certFile, keyFile, roots
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	// Written to a temporary name and renamed, as a certificate renewal would, so that a
	// reload never reads half a file.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsServer starts a node with STARTTLS and returns it, its address, its config and the
// roots that trust its certificate.
func tlsServer(t *testing.T) (*Server, string, Config, *x509.CertPool) {
	t.Helper()
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.CommandTimeout = 2 * time.Second
	certDir := t.TempDir()
	var roots *x509.CertPool
	cfg.TLSCertFile, cfg.TLSKeyFile, roots = testCert(t, certDir, cfg.Hostname, 1)
	s, addr := startServer(t, cfg)
	return s, addr, cfg, roots
}

// servedSerial does a STARTTLS handshake with addr and returns the serial of the certificate.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	c := dialTLS(t, addr, &tls.Config{ServerName: "mx.example.test", RootCAs: roots})
	if c == nil {
		t.Fatal("STARTTLS failed")
	}
	defer c.Close()
	st, _ := c.TLSConnectionState()
	return st.PeerCertificates[0].SerialNumber.Int64()
}

// dialTLS returns a client that has said STARTTLS, completed the handshake and said EHLO inside
// TLS; nil if any of it failed (logged). DialStartTLS fails unless STARTTLS is advertised.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		t.Logf("STARTTLS: %v", err)
		return nil
	}
	// The handshake runs at the first write: the EHLO inside TLS.
	if err := c.Hello("client.test"); err != nil {
		t.Logf("EHLO inside TLS: %v", err)
		c.Close()
		return nil
	}
	return c
}

func TestStartTLSInbound(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	certDir := t.TempDir()
	var roots *x509.CertPool
	cfg.TLSCertFile, cfg.TLSKeyFile, roots = testCert(t, certDir, cfg.Hostname, 1)
	_, addr := startServer(t, cfg)

	t.Run("a message sent inside TLS is relayed with ESMTPS in its Received header", func(t *testing.T) {
		c := dialTLS(t, addr, &tls.Config{ServerName: cfg.Hostname, RootCAs: roots})
		if c == nil {
			t.Fatal("STARTTLS failed")
		}
		defer c.Close()
		st, _ := c.TLSConnectionState()
		if st.Version < tls.VersionTLS12 {
			t.Errorf("negotiated TLS version %x, want 1.2 or later", st.Version)
		}
		body := message("tls-1")
		if err := c.SendMail("a@example.net", []string{"user1@example.test"}, strings.NewReader(body)); err != nil {
			t.Fatalf("send inside TLS: %v", err)
		}
		eventually(t, 10*time.Second, "delivery", func() bool { return headerCount(sink, "X-Mtastress-Id: tls-1") == 1 })
		for _, m := range sink.Messages() {
			if !strings.Contains(string(m.Data), "with ESMTPS id") {
				t.Errorf("Received header without ESMTPS:\n%s", m.Data)
			}
		}
	})

	t.Run("a client offering only TLS 1.1 is refused", func(t *testing.T) {
		if c := dialTLS(t, addr, &tls.Config{ServerName: cfg.Hostname, RootCAs: roots, MaxVersion: tls.VersionTLS11}); c != nil {
			c.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
}

func TestStartTLSHandshakeTimeout(t *testing.T) {
	sink := startSink(t)
	cfg := testConfig(t, sink.Addr())
	cfg.CommandTimeout = 500 * time.Millisecond
	cfg.TLSCertFile, cfg.TLSKeyFile, _ = testCert(t, t.TempDir(), cfg.Hostname, 1)
	s, addr := startServer(t, cfg)

	// A client that asks for TLS and then says nothing holds its slot for the command timeout
	// only (300 s, 10 s in stress; here shortened).
	c := greeted(t, addr)
	expect(t, "STARTTLS", c.cmd("STARTTLS"), "220 ")
	start := time.Now()
	eventually(t, 5*time.Second, "the silent handshake to be cut off", func() bool { return s.Snapshot().Active == 0 })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("handshake held the slot %v, want about the command timeout", d)
	}
}

func TestStartTLSCertificateReload(t *testing.T) {
	s, addr, cfg, roots := tlsServer(t)
	if got := servedSerial(t, addr, roots); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	// A renewal under the same file names, then a reload: the next handshake gets the new one.
	_, _, roots2 := testCert(t, filepath.Dir(cfg.TLSCertFile), cfg.Hostname, 2)
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, roots2); got != 2 {
		t.Fatalf("after reload serial %d, want 2", got)
	}

	// A broken file leaves the running certificate in place.
	if err := os.WriteFile(cfg.TLSCertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if got := servedSerial(t, addr, roots2); got != 2 {
		t.Fatalf("after a failed reload serial %d, want 2", got)
	}
}

func TestStartTLSConfigErrors(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.TLSCertFile = "cert.pem"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "tls_key_file") {
		t.Errorf("cert without key: %v", err)
	}
	cfg.TLSKeyFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := New(cfg); err == nil {
		t.Error("missing files accepted")
	}
}

func TestStartTLSDaemonReload(t *testing.T) {
	sink := startSink(t)
	dir := t.TempDir()
	certFile, keyFile, roots := testCert(t, t.TempDir(), "mx.example.test", 1)
	path := daemonFile(t, dir, sink.Addr(), fmt.Sprintf("tls_cert_file: %s\ntls_key_file: %s\n", certFile, keyFile))
	d := startDaemon(t, path)
	addr := d.smtp[0].Addr().String()
	if got := servedSerial(t, addr, roots); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	// SIGHUP with the file unchanged: the renewed certificate behind the same names is read.
	_, _, roots2 := testCert(t, filepath.Dir(certFile), "mx.example.test", 2)
	fc, err := LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reload(fc); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, roots2); got != 2 {
		t.Fatalf("after reload serial %d, want 2", got)
	}
}

func TestStartTLSConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := daemonFile(t, dir, "127.0.0.1:1", "tls_cert_file: /nonexistent/cert.pem\n")
	_, err := LoadConfigFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Key != "tls_cert_file" || fe.Line == 0 {
		t.Fatalf("cert without key: %v, want an error at tls_cert_file", err)
	}
	path = daemonFile(t, dir, "127.0.0.1:1", "tls_cert_file: /nonexistent/cert.pem\ntls_key_file: /nonexistent/key.pem\n")
	if _, err := LoadConfigFile(path); err == nil || !strings.Contains(err.Error(), "tls_cert_file") {
		t.Fatalf("missing files: %v", err)
	}
}

func TestStartTLSWithoutCertificate(t *testing.T) {
	sink := startSink(t)
	_, addr := startServer(t, testConfig(t, sink.Addr()))
	// Not advertised, refused, and the session goes on in the clear: the wrapper must not take
	// what follows for ciphertext.
	c := greeted(t, addr)
	expect(t, "STARTTLS", c.cmd("STARTTLS"), "502 ")
	expect(t, "message after the refusal", c.sendMessage("a@example.net", []string{"user1@example.test"}, message("clear")), "250 ")
}
