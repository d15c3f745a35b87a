# just comes from `npm install -g rust-just`; the README's two commands do not need it.

# Replay the default scenario (spam-burst) against the embedded stack.
demo:
    go run ./cmd/mtastress replay --json replay.json

# The test suite as CI runs it.
test:
    ./.ci/run

# Quick tests only (skips the end-to-end replays).
short:
    go test -short ./...

# Every fault row at full length (docs/reliability.md): ten thousand idle connections from a
# child process, replays with MailHog away, the alert service and the MTA killed, the long
# crash test. Several minutes.
faults:
    #!/usr/bin/env bash
    set -euo pipefail
    # -v for the figures each row logs; the servers' own log lines (time=...) are left out.
    MTASTRESS_FAULTS=1 MTASTRESS_LONG=1 go test -race -count=1 -timeout 30m -v ./mta/ ./simulator/ 2>&1 |
        grep -a -v -E ': time=[0-9]|^=== (RUN|PAUSE|CONT|NAME)'

# Every fuzz target in turn, `time` each (CI runs .ci/fuzz at 5 s); prints the exec counts.
fuzz time="30s":
    FUZZTIME={{time}} ./.ci/fuzz
