package store

import (
	"context"
	"sync"
)

// SQLite, compiled to Go, calls deep: a query run on a request's fresh
// goroutine grows and copies that goroutine's stack every time, which
// costs as much as the query itself. Warm runs such work on a few
// long-lived goroutines whose stacks have grown once.

// warmWorkers is how many goroutines Warm keeps.
const warmWorkers = 8

type warmPool struct {
	once sync.Once
	work chan warmJob
}

type warmJob struct {
	f    func()
	done chan any // receives the panic of f, or nil
}

// Warm runs f on one of the database's long-lived goroutines and returns
// once it has, re-raising its panic here. It returns ctx's error, without
// running f, when ctx ends before a goroutine is free. f must not call
// Warm.
func (db *DB) Warm(ctx context.Context, f func()) error {
	db.warm.once.Do(func() {
		db.warm.work = make(chan warmJob)
		for range warmWorkers {
			go warmWorker(db.warm.work)
		}
	})
	j := warmJob{f: f, done: make(chan any, 1)}
	select {
	case db.warm.work <- j:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p := <-j.done; p != nil {
		panic(p)
	}
	return nil
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
