// Package scenarios owns the scenario file format, its validation, the
// built-in scenario library and the model catalog.
//
// It runs nothing: the simulator replays what this package returns, and
// every other package reads model limits from the same [Catalog]. Parsing
// is strict because a scenario is a test: a typo that silently changed the
// load would make a replay pass for the wrong reason. Every error is an
// [*Error] naming file, line and column, and wraps [ErrInvalid].
//
// The format is described in docs/scenarios.md.
package scenarios
