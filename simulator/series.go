package simulator

import (
	"context"
	"sync"
	"time"
)

// seriesInterval is how often the replay samples each node's load for the report's charts.
const seriesInterval = 200 * time.Millisecond

// Point is one sample of a node's load, at real seconds since the replay started.
type Point struct {
	T       float64 `json:"t"`
	Active  int     `json:"active"`
	Waiting int     `json:"waiting"`
}

// series records every node's load while a replay runs.
type series struct {
	start time.Time
	mu    sync.Mutex
	nodes [][]Point
}

// record samples the stack until ctx ends.
func (s *series) record(ctx context.Context, tg Target, nodes int, wg *sync.WaitGroup) {
	defer wg.Done()
	s.nodes = make([][]Point, nodes)
	tick := time.NewTicker(seriesInterval)
	defer tick.Stop()
	for {
		s.sample(tg)
		select {
		case <-ctx.Done():
			s.sample(tg)
			return
		case <-tick.C:
		}
	}
}

func (s *series) sample(tg Target) {
	t := time.Since(s.start).Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.nodes {
		if snap, ok := tg.State(i); ok {
			s.nodes[i] = append(s.nodes[i], Point{T: t, Active: snap.Active, Waiting: snap.Waiting})
		}
	}
}

func (s *series) points(i int) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Point(nil), s.nodes[i]...)
}
