package testenv

import (
	"io"
	"log"
	"runtime"
	"strings"
	"sync"

	"github.com/ian-kent/go-log/layout"
	"github.com/ian-kent/go-log/levels"
	golog "github.com/ian-kent/go-log/log"
)

// MailHog writes a line for every SMTP command and reply to the standard
// log package, and a line for every API request to github.com/ian-kent/go-log
// (which prints to stdout). Neither may reach the product's output.
//
// go-log is used by MailHog alone, so it is silenced outright.
//
// The standard logger is shared with the rest of the process, and slog's
// default handler writes through it too, so log.SetOutput(io.Discard) would
// hide everyone's output, and discarding only while MailHog starts would
// miss the lines its sessions write later. Instead the standard logger's
// writer is wrapped once in a filter that drops a line only when MailHog's
// code is on the calling goroutine's stack, and passes every other line to
// the writer it wrapped. The filter stays installed: it is transparent to
// everyone else, and removing it while a MailHog runs would bring the noise
// back. Whoever replaces the standard logger's output after StartMailHog
// (slog.SetDefault does) removes the filter; the next StartMailHog puts it
// back in front of the new writer.

var (
	quietLogMu   sync.Mutex
	goLogSilence sync.Once
)

// quietMailHogLogs installs both silencers. It must run before any of
// MailHog's goroutines: go-log's level map is not safe to change while
// other goroutines log.
func quietMailHogLogs() {
	goLogSilence.Do(func() {
		root := golog.Logger()
		root.SetLevel(levels.FATAL)
		root.SetAppender(discardAppender{})
	})

	quietLogMu.Lock()
	defer quietLogMu.Unlock()
	if _, ok := log.Writer().(*mailHogLogFilter); !ok {
		log.SetOutput(&mailHogLogFilter{next: log.Writer()})
	}
}

// mailHogLogFilter drops the standard logger's lines written from MailHog's
// code. The log package serialises calls to Write.
type mailHogLogFilter struct {
	next io.Writer
}

func (f *mailHogLogFilter) Write(p []byte) (int, error) {
	if calledFromMailHog() {
		return len(p), nil
	}
	return f.next.Write(p)
}

// mailHogStackDepth is deep enough for MailHog's deepest logging call
// (session → protocol → log.Printf → Logger.output → Write) with room to spare.
const mailHogStackDepth = 32

func calledFromMailHog() bool {
	var pcs [mailHogStackDepth]uintptr
	n := runtime.Callers(2, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "github.com/mailhog/") {
			return true
		}
		if !more {
			return false
		}
	}
}

// discardAppender is a go-log appender that writes nothing.
type discardAppender struct{}

func (discardAppender) Write(levels.LogLevel, string, ...interface{}) {}
func (discardAppender) Layout() layout.Layout                         { return nil }
func (discardAppender) SetLayout(layout.Layout)                       {}
