package testenv

import (
	"net/http"
	"sync"

	"github.com/gorilla/pat"
	"github.com/mailhog/MailHog-Server/api"
	mhconfig "github.com/mailhog/MailHog-Server/config"
	"github.com/mailhog/MailHog-UI/assets"
	uiconfig "github.com/mailhog/MailHog-UI/config"
	"github.com/mailhog/MailHog-UI/web"
	"github.com/mailhog/data"
	"github.com/mailhog/storage"
)

// MailHog's API keeps state in package variables: every api.CreateAPI replaces the v1 event
// stream, which each earlier API's loop reads once a minute, so a process that starts MailHog
// twice and lives past a minute races (the race detector reports it). So the process builds
// MailHog's API and UI once, over a storage that stands for whichever instance is answering,
// and every instance's HTTP server hands its requests to that one router, one request at a
// time, with its own storage switched in. The routes it reaches answer quickly: the two
// long-lived ones (the websocket and the v1 event stream) are served per instance, in front.
//
// TODO: the better design is our own handlers for /api/v1 and /api/v2 over each instance's
// storage, or a MailHog without package state; then requests to two instances need not wait
// for each other.
var sharedAPI struct {
	once   sync.Once
	router *pat.Router
	store  switchStorage

	// serve is held for the whole of one request: store.cur is the instance it is for.
	serve sync.Mutex
}

// serveShared answers r from MailHog's API and UI on behalf of the instance whose storage is st.
func serveShared(st storage.Storage, w http.ResponseWriter, r *http.Request) {
	sharedAPI.once.Do(buildSharedAPI)
	sharedAPI.serve.Lock()
	defer sharedAPI.serve.Unlock()
	sharedAPI.store.cur = st
	defer func() { sharedAPI.store.cur = nil }()
	sharedAPI.router.ServeHTTP(w, r)
}

func buildSharedAPI() {
	conf := &mhconfig.Config{
		Hostname:     mailHogHostname,
		Storage:      &sharedAPI.store,
		MessageChan:  make(chan *data.Message), // never sent to: see MailHog
		OutgoingSMTP: map[string]*mhconfig.OutgoingSMTP{},
	}
	r := pat.New()
	// pat sets a default NotFoundHandler on first use, racing with concurrent requests;
	// setting it first avoids that.
	r.NotFoundHandler = http.NotFoundHandler()
	web.CreateWeb(&uiconfig.Config{UIBindAddr: "127.0.0.1"}, r, assets.Asset)
	api.CreateAPI(conf, r)
	sharedAPI.router = r
}

// switchStorage forwards to the storage of the instance being served. Callers hold
// sharedAPI.serve, which is what makes the unguarded field safe.
type switchStorage struct {
	cur storage.Storage
}

func (s *switchStorage) Store(m *data.Message) (string, error) { return s.cur.Store(m) }
func (s *switchStorage) List(start, limit int) (*data.Messages, error) {
	return s.cur.List(start, limit)
}
func (s *switchStorage) Count() int                            { return s.cur.Count() }
func (s *switchStorage) DeleteOne(id string) error             { return s.cur.DeleteOne(id) }
func (s *switchStorage) DeleteAll() error                      { return s.cur.DeleteAll() }
func (s *switchStorage) Load(id string) (*data.Message, error) { return s.cur.Load(id) }
func (s *switchStorage) Search(kind, query string, start, limit int) (*data.Messages, int, error) {
	return s.cur.Search(kind, query, start, limit)
}
