package app

import "sync"

// recentRecords remembers the record each case had after this process last wrote it, so the next write of the
// same case can skip reading the subject: most cases have one writer at a time. It is only a guess: the append's
// compare-and-set still decides, and a case another replica moved on since fails it, is dropped from here and read
// again. Bounded; the oldest entries make room.
type recentRecords struct {
	mu    sync.Mutex
	max   int
	byKey map[string]Record
	order []string
	next  int
}

func newRecentRecords(max int) *recentRecords {
	return &recentRecords{max: max, byKey: make(map[string]Record, max), order: make([]string, max)}
}

func (r *recentRecords) get(tenant, id string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.byKey[tenant+"/"+id]
	return rec, ok
}

func (r *recentRecords) put(rec Record) {
	key := rec.Case.Tenant + "/" + rec.Case.ID
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byKey[key]; !ok {
		if old := r.order[r.next]; old != "" {
			delete(r.byKey, old)
		}
		r.order[r.next] = key
		r.next = (r.next + 1) % r.max
	}
	r.byKey[key] = rec
}

func (r *recentRecords) drop(tenant, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The ring keeps the key; its slot is reused in turn.
	delete(r.byKey, tenant+"/"+id)
}
