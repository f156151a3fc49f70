package metrics

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis returns a hook that counts the failed commands of the client it is
// added to (rdb.AddHook).
func (c *Clients) Redis() redis.Hook { return redisHook{c} }

type redisHook struct{ c *Clients }

// DialHook counts nothing: a connection that cannot be made fails the
// command that needed it, which is counted.
func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if failed(ctx, cmd, err) {
			h.c.redis.WithLabelValues(cmd.Name()).Inc()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if failed(ctx, cmd, cmd.Err()) {
				h.c.redis.WithLabelValues(cmd.Name()).Inc()
			}
		}
		return err
	}
}

// failed tells an error of Redis from the answers that are not: redis.Nil
// (no such key), NOSCRIPT (a script's first run, which go-redis answers by
// sending the script), the end of the caller's context (a client gone, a
// blocking pop stopped at shutdown), and the refusals of the commands that
// go-redis sends on a new connection and tolerates (HELLO before Redis 6,
// CLIENT SETINFO before 7.2).
func failed(ctx context.Context, cmd redis.Cmder, err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), ctx.Err() != nil:
		return false
	case strings.HasPrefix(err.Error(), "NOSCRIPT"):
		return false
	}
	var reply redis.Error
	return !(errors.As(err, &reply) && (cmd.Name() == "hello" || cmd.Name() == "client"))
}
