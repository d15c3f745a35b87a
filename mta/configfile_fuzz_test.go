package mta

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzConfigFile holds ParseConfigFile to what `mtastress mta --config` relies on: no input
// panics it; every failure is a *FileError that wraps ErrInvalidConfig and names the file and
// a line, so the operator is told where to look; and a file it accepts gives a Config that New
// accepts too, so a node never passes the file check and then fails to start.
// Seeds: testdata/fuzz/FuzzConfigFile, the example file and a few edits of a minimal file.
func FuzzConfigFile(f *testing.F) {
	minimal := "node: edge-1\ncluster: edge\nmodel: T10\nhostname: mx.example.test\n" +
		"listen: 127.0.0.1:0\nspool: /var/spool/mtastress\nrelay: 127.0.0.1:2525\n"
	if b, err := os.ReadFile("testdata/mta.example.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		minimal,
		minimal + "cooldown: 0s\nmin_free_bytes: 1GiB\nmax_message_bytes: 10MiB\n",
		minimal + "retry_min: 10s\nretry_max: 1s\n",
		minimal + "nats: {urls: [nats://127.0.0.1:4222], state_dir: /var/spool/mtastress/events}\n",
		minimal + "transports: {Example.ORG: mail.example.org:25}\n",
		minimal + "relay_networks: [10.0.0.0/33]\n",
		minimal + "domains: [&a example.com, *a]\n",
		strings.Replace(minimal, "node: edge-1", "node: edge.1", 1),
		"node: [unclosed\n",
		"- a\n- b\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := ParseConfigFile("fuzz.yaml", data)
		if err != nil {
			var fe *FileError
			switch {
			case !errors.As(err, &fe):
				t.Fatalf("error %T %v is not a *FileError", err, err)
			case !errors.Is(err, ErrInvalidConfig):
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			case fe.File != "fuzz.yaml" || fe.Msg == "":
				t.Fatalf("error %#v does not name the file and the problem", fe)
			case fe.Line < 1 || fe.Column < 0:
				t.Fatalf("error %q has no line (%d:%d)", err, fe.Line, fe.Column)
			}
			return
		}
		// The command resolves the model to its limit; any positive limit will do here.
		if err := fc.MTAConfig(10).Validate(); err != nil {
			t.Fatalf("ParseConfigFile accepted a file whose config New refuses: %v\n%s", err, data)
		}
	})
}
