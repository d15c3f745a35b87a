package testenv

import (
	"sync"

	"github.com/mailhog/data"
	"github.com/mailhog/storage"
)

// lockedStorage serialises MailHog's in-memory storage. Its Store takes a
// lock but List, Count, Search and Load read the slice without it, so an API
// request during a delivery is a data race (and a torn read after append
// grows the slice). Every call takes the lock here; messages are never
// changed after Store, so the values List copies out stay valid.
type lockedStorage struct {
	mu sync.RWMutex
	s  *storage.InMemory
}

var _ storage.Storage = (*lockedStorage)(nil)

func newLockedStorage() *lockedStorage {
	return &lockedStorage{s: storage.CreateInMemory()}
}

func (l *lockedStorage) Store(m *data.Message) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Store(m)
}

func (l *lockedStorage) List(start, limit int) (*data.Messages, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.List(start, limit)
}

func (l *lockedStorage) Search(kind, query string, start, limit int) (*data.Messages, int, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.Search(kind, query, start, limit)
}

func (l *lockedStorage) Count() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.Count()
}

func (l *lockedStorage) DeleteOne(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.DeleteOne(id)
}

func (l *lockedStorage) DeleteAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.DeleteAll()
}

func (l *lockedStorage) Load(id string) (*data.Message, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.s.Load(id)
}
