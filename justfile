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
