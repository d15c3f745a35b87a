package events

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrConnConfig is returned for a NATS connection setting that cannot work.
var ErrConnConfig = errors.New("events: nats connection config")

// ConnConfig is how a production node or alert service reaches its NATS cluster. At most one
// way of authenticating may be set.
type ConnConfig struct {
	// URLs of the cluster's servers; the client fails over between them.
	URLs []string `yaml:"urls"`
	// Name is the client name the servers show in their monitoring.
	Name string `yaml:"name"`

	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	// NKeyFile is a file holding an NKey seed; CredsFile a JWT plus seed (.creds).
	NKeyFile  string `yaml:"nkey_file"`
	CredsFile string `yaml:"creds_file"`

	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig is the client side of TLS to NATS.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`   // servers' CA; empty: the system roots
	CertFile string `yaml:"cert_file"` // client certificate, for servers that verify clients
	KeyFile  string `yaml:"key_file"`
	// Required turns TLS on even when no file is given (a server with a public certificate).
	Required bool `yaml:"required"`
}

// Redacted returns a copy fit for logging: secrets replaced, paths kept.
func (c ConnConfig) Redacted() ConnConfig {
	if c.Password != "" {
		c.Password = "REDACTED"
	}
	if c.Token != "" {
		c.Token = "REDACTED"
	}
	return c
}

// Validate checks the settings without connecting.
func (c ConnConfig) Validate() error {
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no urls", ErrConnConfig)
	}
	for _, u := range c.URLs {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("%w: url %q needs a scheme, as in nats://host:4222", ErrConnConfig, u)
		}
	}
	ways := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.NKeyFile != "", c.CredsFile != ""} {
		if set {
			ways++
		}
	}
	if ways > 1 {
		return fmt.Errorf("%w: set only one of user/password, token, nkey_file, creds_file", ErrConnConfig)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("%w: tls cert_file and key_file go together", ErrConnConfig)
	}
	return nil
}

// Connect dials the cluster. It returns at once even when no server answers: the client keeps
// trying in the background, so mail flows while NATS is away and events follow when it is back.
func Connect(c ConnConfig, log *slog.Logger) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
	auth, err := c.authOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	if tlsOpt, err := c.TLS.option(); err != nil {
		return nil, err
	} else if tlsOpt != nil {
		opts = append(opts, tlsOpt)
	}
	nc, err := nats.Connect(strings.Join(c.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnConfig, err)
	}
	return nc, nil
}

func (c ConnConfig) authOptions() ([]nats.Option, error) {
	switch {
	case c.User != "":
		return []nats.Option{nats.UserInfo(c.User, c.Password)}, nil
	case c.Token != "":
		return []nats.Option{nats.Token(c.Token)}, nil
	case c.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey_file: %v", ErrConnConfig, err)
		}
		return []nats.Option{opt}, nil
	case c.CredsFile != "":
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("%w: creds_file: %v", ErrConnConfig, err)
		}
		return []nats.Option{nats.UserCredentials(c.CredsFile)}, nil
	}
	return nil, nil
}

func (t TLSConfig) option() (nats.Option, error) {
	if !t.Required && t.CAFile == "" && t.CertFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls ca_file: %v", ErrConnConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls ca_file %s holds no PEM certificate", ErrConnConfig, t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls cert_file/key_file: %v", ErrConnConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return nats.Secure(cfg), nil
}
