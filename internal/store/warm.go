package store

import (
	"context"
	"errors"
	"sync"
)

// SQLite, compiled to Go, calls deep: a query run on a request's fresh
// goroutine grows and copies that goroutine's stack every time, which
// costs as much as the query itself. Warm runs such work on a few
// long-lived goroutines whose stacks have grown once, as many as the
// SQLite read pool has connections. On PostgreSQL, whose driver calls
// shallow and whose queries wait on the network, Warm runs f in place:
// a few goroutines would make every query wait its turn.

// warmWorkers is how many goroutines Warm keeps: the read pool's size.
const warmWorkers = sqliteReadConns

type warmPool struct {
	mu     sync.RWMutex // held for reading to submit, for writing to stop
	work   chan warmJob
	closed bool
}

type warmJob struct {
	f    func()
	done chan any // receives the panic of f, or nil
}

// Warm runs f on one of the database's long-lived goroutines and returns
// once it has, re-raising its panic here. It returns ctx's error, without
// running f, when ctx ends before a goroutine is free. f must return
// (not exit its goroutine) and must not call Warm.
func (db *DB) Warm(ctx context.Context, f func()) error {
	if db.Dialect != SQLite {
		if err := ctx.Err(); err != nil {
			return err
		}
		f()
		return nil
	}
	w := &db.warm
	w.mu.RLock()
	if w.work == nil && !w.closed {
		w.mu.RUnlock()
		w.start()
		w.mu.RLock()
	}
	if w.closed {
		w.mu.RUnlock()
		return errors.New("store: closed")
	}
	j := warmJob{f: f, done: make(chan any, 1)}
	select {
	case w.work <- j:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	if p := <-j.done; p != nil {
		panic(p)
	}
	return nil
}

func (w *warmPool) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.work != nil || w.closed {
		return
	}
	w.work = make(chan warmJob)
	for range warmWorkers {
		go warmWorker(w.work)
	}
}

// stop ends the goroutines once the jobs handed to them are done.
func (w *warmPool) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed && w.work != nil {
		close(w.work)
	}
	w.closed = true
}

func warmWorker(work chan warmJob) {
	for j := range work {
		runJob(j)
	}
}

func runJob(j warmJob) {
	defer func() { j.done <- recover() }()
	j.f()
}
