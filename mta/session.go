package mta

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"
)

// Every reply a Session gives is an *smtp.SMTPError with a code chosen here: go-smtp turns any
// other error from Data into a permanent 554, which would bounce mail that should be retried.

func smtpErr(code int, enh smtp.EnhancedCode, format string, a ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: fmt.Sprintf(format, a...)}
}

// Replies of the recipient policy and the data phase.
var (
	errRelayDenied  = smtpErr(554, smtp.EnhancedCode{5, 7, 1}, "Relay access denied")
	errUnknownUser  = smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "No such user here")
	errTooManyRcpts = smtpErr(452, smtp.EnhancedCode{4, 5, 3}, "Too many recipients")
	errTooBig       = smtpErr(552, smtp.EnhancedCode{5, 3, 4}, "Message too big")
	errNUL          = smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Message contains NUL characters")
	errLoop         = smtpErr(554, smtp.EnhancedCode{5, 4, 6}, "Too many Received headers: mail loop")
	errLongLine     = smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Line too long (RFC 5322 section 2.1.1 allows 998 characters)")
	errReadFailed   = smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Error reading message, try again")
	errSpoolFailed  = smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure queueing message, try again")
	errSpoolFull    = smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Queue is full, try again later")
	errDiskFull     = smtpErr(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
	// RFC 3463 4.7.1: delivery not authorized for now; the client may try again later.
	errMailRate = smtpErr(450, smtp.EnhancedCode{4, 7, 1}, "Too much mail from your address, slow down")
	errRcptRate = smtpErr(450, smtp.EnhancedCode{4, 7, 1}, "Too many recipients from your address, slow down")
)

// backend creates a session once the client has said EHLO or HELO.
type backend struct{ srv *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sc, ok := c.Conn().(*slotConn)
	if !ok {
		// Only our listener feeds go-smtp; anything else is a programming error, answered softly.
		return nil, smtpErr(421, smtp.EnhancedCode{4, 3, 0}, "Internal error")
	}
	sc.log.Debug("session greeted", "helo", c.Hostname(), "stress", sc.set.stress, "tls", sc.inTLS())
	return &session{srv: b.srv, conn: sc, smtp: c, log: sc.log}, nil
}

// session is one client's SMTP dialogue after EHLO.
type session struct {
	srv  *Server
	conn *slotConn
	smtp *smtp.Conn // for the EHLO name, which a later EHLO may change
	log  *slog.Logger

	// mu guards the transaction: with BDAT, go-smtp runs Data on its own goroutine and may
	// call Reset from the connection's goroutine while Data still runs.
	mu    sync.Mutex
	from  string // "" is the null sender
	body8 bool   // MAIL said BODY=8BITMIME
	rcpts []string
}

var _ smtp.Session = (*session)(nil)

func (s *session) Reset() {
	s.mu.Lock()
	s.from, s.rcpts = "", nil
	s.mu.Unlock()
	s.conn.setTxn(false)
}

func (s *session) Logout() error {
	s.Reset()
	return nil
}

// Mail takes the reverse-path. The null sender is allowed (RFC 5321 section 4.5.5): bounces
// use it, and this gateway never bounces mail from it.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if !s.allow(rateMessages) {
		s.srv.mailRejected(s, from, "", errMailRate.Code, errMailRate.Message)
		return errMailRate
	}
	if from != "" {
		a, err := parseAddress(from)
		if err != nil {
			s.srv.mailRejected(s, from, "", 553, err.Error())
			return smtpErr(553, smtp.EnhancedCode{5, 1, 7}, "Sender address refused: %v", err)
		}
		from = a.String()
	}
	s.mu.Lock()
	s.from, s.rcpts = from, nil
	s.body8 = opts != nil && opts.Body == smtp.Body8BitMIME
	s.mu.Unlock()
	s.conn.setTxn(true)
	return nil
}

// Rcpt applies the recipient policy: local domains from anyone, other domains only from the
// relay networks, everything else refused.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allow(rateRecipients) {
		return s.refuseLocked(to, errRcptRate)
	}
	if len(s.rcpts) >= s.srv.cfg.MaxRecipients {
		return s.refuseLocked(to, errTooManyRcpts) // RFC 5321 section 4.5.3.1.10: 452, the client sends the rest later
	}
	addr, err := s.srv.checkRecipient(to, s.conn.ip)
	if err != nil {
		return s.refuseLocked(to, err)
	}
	// A recipient given twice gets one copy, as Postfix's duplicate filter does.
	if !slices.Contains(s.rcpts, addr) {
		s.rcpts = append(s.rcpts, addr)
	}
	return nil
}

// allow asks the rate limiter for one more event of this client; exempt listeners skip it.
func (s *session) allow(kind rateKind) bool {
	if s.conn.exempt || s.srv.rates.allow(kind, s.conn.ip) {
		return true
	}
	s.srv.rateLimited(kind, s.conn.ip)
	return false
}

func (s *session) refuseLocked(to string, err *smtp.SMTPError) error {
	s.srv.mailRejected(s, s.from, to, err.Code, err.Message)
	return err
}

// Data reads the message, normalises its line ends, spools it durably and only then answers
// 250 (RFC 5321 section 6.1: after the 250 the message must not be lost).
func (s *session) Data(r io.Reader) error {
	s.mu.Lock()
	env := envelope{ID: s.srv.nextQueueID(), From: s.from, To: slices.Clone(s.rcpts), Client: s.conn.ip.String()}
	declared8 := s.body8
	s.mu.Unlock()
	received := s.srv.receivedHeader(s, env.ID, env.To)
	body, err := readMessage(r, received, s.srv.cfg.MaxMessageBytes, s.srv.tuning.Load().hopcountLimit)
	if err != nil {
		return s.dataFailed(env, err)
	}
	env.Received = s.srv.now()
	env.EightBit = declared8 || has8bit(body)
	if err := s.srv.enqueue(env, body, s); err != nil {
		return s.dataFailed(env, err)
	}
	s.conn.noteAccepted()
	// RFC 1047: the reply to the final dot goes out at once; delivery runs on its own.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + env.ID}
}

// dataFailed picks the reply for a failed data phase and logs it as a rejection.
func (s *session) dataFailed(env envelope, err error) error {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
	case errors.Is(err, errMessageNUL):
		se = errNUL
	case errors.Is(err, errMessageLoop):
		se = errLoop
	case errors.Is(err, smtp.ErrTooLongLine):
		// go-smtp will close the connection after this reply: its line limit stays tripped.
		se = errLongLine
	case errors.Is(err, ErrSpoolFull):
		se = errSpoolFull
	case errors.Is(err, ErrDiskFull):
		se = errDiskFull
	case errors.Is(err, errSpoolWrite):
		s.log.Error("message not spooled", "err", err)
		se = errSpoolFailed
	default:
		s.log.Info("message not read", "err", err)
		se = errReadFailed
	}
	if se.Code == smtp.ErrDataTooLarge.Code {
		se = errTooBig
	}
	s.srv.mailRejected(s, env.From, strings.Join(env.To, ","), se.Code, se.Message)
	return se
}
