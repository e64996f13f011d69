package daemon

import (
	"context"
	"sync"
	"time"
)

// background runs a component's periodic work on a goroutine of its own.
// Its zero value is ready; start after shutdown starts nothing.
type background struct {
	mu               sync.Mutex
	stop, done       chan struct{}
	started, stopped bool
}

// start runs fn every interval (and at each kick, if any), unless the loop
// runs already or was shut down.
func (b *background) start(interval time.Duration, kick <-chan struct{}, fn func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.stopped {
		return
	}
	b.started = true
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.done)
		every(b.stop, interval, kick, fn)
	}()
}

// shutdown stops the loop and waits for it, then runs final (if not nil)
// when the loop ever ran; only its first call does anything.
func (b *background) shutdown(final func() error) error {
	b.mu.Lock()
	started := b.started && !b.stopped
	b.stopped = true
	b.mu.Unlock()
	if !started {
		return nil
	}
	close(b.stop)
	<-b.done
	if final == nil {
		return nil
	}
	return final()
}

// every runs fn at each tick of interval (and at each kick, if any) until
// stop is closed, each run under a 30-second deadline.
func every(stop <-chan struct{}, interval time.Duration, kick <-chan struct{}, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		fn(ctx)
		cancel()
	}
}
