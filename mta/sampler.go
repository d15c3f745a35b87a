package mta

import (
	"strconv"
	"time"

	"github.com/mtastress/mtastress/events"
)

// sample publishes a load sample every SampleInterval, real time, until the server stops.
func (s *Server) sample() {
	defer close(s.samplerDone)
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if s.cfg.Events != nil {
				s.cfg.Events.Sample(s.loadSample())
			}
		case <-s.stopSampler:
			return
		}
	}
}

// loadSample reads the node's state and restarts the peak demand window.
func (s *Server) loadSample() events.LoadSample {
	p := s.pool
	p.mu.Lock()
	ls := events.LoadSample{
		Node:               events.Node{Node: s.cfg.Node, Cluster: s.cfg.Cluster, Model: s.cfg.Model, Limit: s.cfg.Limit},
		Active:             p.stress.state.Active,
		Waiting:            p.waiting.Len(),
		Stress:             p.stress.state.InStress,
		StressPercent:      stressPercent(p.stressed, p.stress.state.Active),
		PeakDemand:         p.stress.samplePeak,
		Episode:            p.stress.episode,
		SessionsServed:     p.served,
		SessionsTempfailed: p.tempfailed,
	}
	p.stress.samplePeak = p.stress.state.Active + p.waiting.Len()
	p.mu.Unlock()
	ls.QueueDepth = s.spool.depth()
	ls.MessagesAccepted = s.messagesAccepted.Load()
	ls.MessagesRejected = s.messagesRejected.Load()
	return ls
}

func itoa(n int) string { return strconv.Itoa(n) }
