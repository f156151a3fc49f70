package store

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of concurrent callers to Redis together, as
// one pipeline per round trip. A round trip costs both sides a write, a
// read and a wake-up whatever it carries; under load that is most of what
// accepting a job costs (BENCHMARKS.md), so many POST /jobs sharing one is
// what lets the accept path keep up with a queue that does less per job.
// A batch is whatever is waiting when a sender is free, never a timer: a
// caller alone is sent at once.
//
// Each command stays what it was: a script runs atomically in Redis
// whether it came alone or in a pipeline, and each caller gets its own
// command's result.
type batcher struct {
	rdb redis.UniversalClient

	mu      sync.Mutex
	waiting []*pending
	senders int
}

type pending struct {
	cmd  redis.Cmder
	done chan struct{}
}

const (
	// maxSenders bounds the pipelines in flight at once. More than one
	// keeps Redis busy while a sender reads its answers and the next
	// batch gathers.
	maxSenders = 4
	// maxBatch bounds a pipeline, so that one slow batch holds few callers.
	maxBatch = 64
)

// do sends cmd and waits for its answer, or for ctx. A caller that stops
// waiting may still find cmd done, as with any command already written.
func (b *batcher) do(ctx context.Context, cmd redis.Cmder) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	p := &pending{cmd: cmd, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, p)
	if b.senders < maxSenders {
		b.senders++
		go b.send()
	}
	b.mu.Unlock()
	select {
	case <-p.done:
		return cmd.Err()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// send pipelines what is waiting, batch after batch, and stops when
// nothing is: senders live only while there is work.
func (b *batcher) send() {
	for {
		b.mu.Lock()
		n := min(len(b.waiting), maxBatch)
		if n == 0 {
			b.senders--
			b.mu.Unlock()
			return
		}
		batch := make([]*pending, n)
		copy(batch, b.waiting)
		b.waiting = append(b.waiting[:0], b.waiting[n:]...)
		b.mu.Unlock()

		// Not a caller's context: the batch carries other callers'
		// commands too. The client's read and write timeouts bound it.
		ctx := context.Background()
		pipe := b.rdb.Pipeline()
		for _, p := range batch {
			_ = pipe.Process(ctx, p.cmd)
		}
		// Each command holds its own error; Exec's is the first of them.
		_, _ = pipe.Exec(ctx)
		for _, p := range batch {
			close(p.done)
		}
	}
}

// run runs script as Script.Run does, through the batcher: EVALSHA, and
// EVAL when Redis does not have the script yet (after a restart or
// SCRIPT FLUSH), which loads it for the next.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	// Where a Redis Cluster routes it: the first key.
	cmd.SetFirstKeyPos(3)
	err := b.do(ctx, cmd)
	switch {
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return script.Eval(ctx, b.rdb, keys, args...)
	case err != nil && ctx.Err() != nil:
		// cmd may still be written to by its sender.
		gone := redis.NewCmd(ctx)
		gone.SetErr(err)
		return gone
	}
	return cmd
}
